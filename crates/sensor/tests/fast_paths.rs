//! The detectors' shortcuts (`sqli::may_inject`, the in-place paths of xss and
//! traversal) change no verdict: `detect` equals `detect_exhaustive`, which runs the
//! full reading, on every corpus value (raw and deep-decoded) and on generated text
//! made of the words and punctuation the shortcuts reason about.

mod common;

use bulkhead_sensor::{decode, sqli, traversal, xss};
use proptest::prelude::*;

fn same(v: &[u8]) {
    assert_eq!(
        sqli::detect(v),
        sqli::detect_exhaustive(v),
        "sqli {:?}",
        String::from_utf8_lossy(v)
    );
    assert_eq!(
        xss::detect(v),
        xss::detect_exhaustive(v),
        "xss {:?}",
        String::from_utf8_lossy(v)
    );
    assert_eq!(
        traversal::detect(v),
        traversal::detect_exhaustive(v),
        "traversal {:?}",
        String::from_utf8_lossy(v)
    );
}

#[test]
fn same_verdicts_on_every_corpus_value() {
    let Some(root) = common::corpora() else {
        return;
    };
    let mut n = 0;
    let mut files: Vec<String> = ["attacks", "dlp"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(root.join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "tsv"))
        .map(|p| {
            p.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    for file in &files {
        for r in common::rows(&root, file) {
            let p = &r.payload;
            same(p);
            same(&decode::url_decode_deep(p));
            for part in p.split(|&b| matches!(b, b'&' | b'=' | b'\n')) {
                same(part);
            }
            n += 1;
        }
    }
    assert!(n > 30_000, "{n} rows");
}

/// Text from SQL, shell, HTML and path vocabulary glued by the punctuation the
/// shortcuts allow and some they do not.
fn texty() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::sample::select(vec![
            "select",
            "union",
            "or",
            "and",
            "1union",
            "1.e1union",
            "0x1Funion",
            "1e5or",
            "if",
            "match",
            "against",
            "sleep",
            "version",
            "char",
            "user",
            "null",
            "true",
            "like",
            "div",
            "abc",
            "calle",
            "mayor",
            "items",
            "page",
            "7",
            "1",
            "42",
            "0",
            "1.5",
            "x",
            "onload",
            "onerror",
            "alert",
            "document",
            "cookie",
            "javascript",
            "JavaScript",
            "etc",
            "passwd",
            "win.ini",
            "WEB-INF",
            "0x2e",
            "0x5c",
            "file",
            "information_schema",
            "sysobjects",
            "e5",
            "1.e",
            ".5",
            "0x1f",
            "page",
            "f",
            "1e",
            "as",
            "in",
            "\u{b}",
            "\0",
            "x=",
            "1=",
            "xp_cmdshell",
            "case",
            "when",
            "end",
            "order",
            "by",
            "from",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::sample::select(vec![
            " ",
            "  ",
            "/",
            "//",
            ".",
            "..",
            ",",
            "(",
            ")",
            "+",
            "-",
            "--",
            "%",
            "^",
            ":",
            "?",
            "=",
            "'",
            "\"",
            "`",
            "#",
            ";",
            "@",
            "@@",
            "*",
            "/*",
            "*/",
            "|",
            "&",
            "<",
            ">",
            "!",
            "::",
            ":=",
            "\t",
            "\n",
            "\\",
            "%2e",
            "%2f",
            "%27",
            "&#40;",
            "&lt;",
            "\u{a0}",
            // The XSS reader's CSS escapes and data URLs.
            "<a href=",
            "<img src=",
            " style=",
            "data:",
            ";base64,",
            "PHNjcmlwdD4=",
            "\\28",
            "/**/",
            "expression",
            "dataformatas=",
            "<?xml:namespace",
            // Mail command lines, brace and placeholder shapes, quoted characters,
            // Markdown spans, fork bombs (thirty-first session).
            "\r\n",
            "MAIL FROM:<",
            "a001 ",
            "RETR 1",
            "{file}",
            "{a,b}",
            "c{a,oun}t",
            ":(){",
            "`type`",
            "w'h'oami",
            "'*'",
            " all (",
            "collate nocase",
            "/proc/1/",
            "wp-config.",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..3),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(50_000))]

    #[test]
    fn same_verdicts_on_generated_text(v in texty()) {
        same(&v);
    }

    #[test]
    fn never_panic_on_bytes(v in proptest::collection::vec(any::<u8>(), 0..256)) {
        same(&v);
        let _ = bulkhead_sensor::cmdi::detect(&v);
    }
}

/// Found by `same_verdicts_on_generated_text`: a keyword glued to the exponent of a float
/// whose dot cut it from its word (`1.e1union` is `1.e1 union` to MySQL).
#[test]
fn keywords_split_off_a_float_exponent() {
    for v in ["1.e1union", "1.e1union select 1", "2.5e3or 1", "1.E9UNION"] {
        same(v.as_bytes());
    }
    assert!(sqli::detect(b"1.e1union").is_some());
}
