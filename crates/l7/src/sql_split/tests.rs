use super::*;
use SqlKind::*;

const PG: Dialect = Dialect::Postgres;
const MY: Dialect = Dialect::Mysql;

/// The kinds decided for `sql`, in order of appearance, each once.
fn kinds(sql: impl AsRef<[u8]>, d: Dialect) -> Vec<SqlKind> {
    let mut all = Vec::new();
    for k in statements(sql.as_ref(), d)
        .expect("readable")
        .into_iter()
        .flat_map(|s| s.kinds)
    {
        if !all.contains(&k) {
            all.push(k);
        }
    }
    all
}

#[test]
fn splits_on_semicolons_outside_quotes_and_comments() {
    assert_eq!(kinds("SELECT 1; DROP TABLE t", PG), [Select, Ddl]);
    assert_eq!(kinds("SELECT ';DROP' ; ", PG), [Select]);
    assert_eq!(kinds("SELECT $x$ ; DELETE $x$", PG), [Select]);
    assert_eq!(kinds("SELECT $1; DELETE FROM t", PG), [Select, Delete]);
    assert_eq!(kinds("/* a /* ; */ ; */ SELECT 1", PG), [Select]);
    assert_eq!(kinds("-- ; DROP\nSELECT 1", PG), [Select]);
    assert_eq!(kinds(";;  ; -- only\n", PG), []);
    // E'' escapes; a plain '' string read either way yields both readings.
    assert_eq!(kinds("SELECT E'\\'; DROP TABLE t'", PG), [Select]);
    assert_eq!(
        kinds("SELECT 'a\\'; DELETE FROM t; --'", PG),
        [Select, Delete]
    );
    assert_eq!(
        kinds("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", PG),
        [Select, Delete]
    );
    assert_eq!(kinds("SELECT * FROM t FOR UPDATE", PG), [Select]);
    assert_eq!(
        kinds("COPY (DELETE FROM t RETURNING *) TO STDOUT", PG),
        [Utility, Delete]
    );
    assert_eq!(
        kinds("EXPLAIN ANALYZE DELETE FROM t", PG),
        [Utility, Delete]
    );
    assert_eq!(
        kinds("PREPARE p (int) AS UPDATE t SET a = $1", PG),
        [Utility, Update]
    );
}

#[test]
fn mysql_comments_and_escapes() {
    assert_eq!(kinds("SELECT 1 # ; DROP\n", MY), [Select]);
    assert_eq!(kinds("SELECT 1--1; DROP TABLE t", MY), [Select, Ddl]);
    assert_eq!(kinds("/*!50000 DROP TABLE t */", MY), [Ddl]);
    assert_eq!(
        kinds("SELECT 1 /*!; DELETE FROM t */", MY),
        [Select, Delete]
    );
    assert_eq!(kinds("SELECT `a;b` FROM t", MY), [Select]);
    assert_eq!(
        kinds("PREPARE s FROM 'DELETE FROM t'", MY),
        [Utility, Delete]
    );
    assert_eq!(kinds("PREPARE s FROM @q", MY), [Utility, Other]);
    assert_eq!(kinds("ANALYZE DELETE FROM t", MY), [Utility, Delete]);
    // With NO_BACKSLASH_ESCAPES the server sees a DELETE: decide it too.
    assert_eq!(
        kinds("SELECT '\\'; DELETE FROM t; -- '", MY),
        [Select, Delete]
    );
}

/// Audit finding 1: PostgreSQL ends `--` at \r too; text that yields no statement but
/// is not plainly nothing is `other`.
#[test]
fn comment_ends_and_text_of_no_statement() {
    assert_eq!(kinds("--\rDROP TABLE t", PG), [Ddl]);
    assert_eq!(kinds("SELECT 1; --\rDROP TABLE t", PG), [Select, Ddl]);
    // MariaDB ends `#` and `-- ` at \n (or NUL) only: \r is inside the comment.
    assert_eq!(kinds("SELECT 1 #\rDROP TABLE t\n", MY), [Select]);
    assert_eq!(kinds("SELECT 1 #\0; DROP TABLE t", MY), [Select, Ddl]);
    assert_eq!(kinds("#\rDROP TABLE t", MY), [Other]);
    for blank in ["", " \n;", "-- a\n/* b */ ;", "/* a */"] {
        assert_eq!(kinds(blank, PG), [], "{blank:?}");
        assert_eq!(kinds(blank, MY), [], "{blank:?}");
    }
    assert_eq!(kinds("# a\n-- b", MY), []);
}

/// Audit finding 2: `$` and bytes above 0x7F continue names; E'' is a token of its own.
#[test]
fn names_with_dollars_and_escape_strings() {
    assert!(kinds("SELECT 1 AS x$q$; DELETE FROM t; --$q$", PG).contains(&Delete));
    assert!(kinds("SELECT 1 AS \u{e9}$q$; DELETE FROM t; --$q$", PG).contains(&Delete));
    assert!(
        kinds(
            "SELECT 1 WHERE 'a' LIKE 'b' ESCAPE'\\'; DELETE FROM t; --'",
            PG
        )
        .contains(&Delete)
    );
    // An E'' string goes on, escapes and all, after whitespace holding a newline.
    assert!(kinds("SELECT E'x'\n'\\' ', '\\' ; DELETE FROM t; -- '", PG).contains(&Delete));
}

/// Audit finding 3: a versioned comment is code or a comment depending on the server.
#[test]
fn versioned_comments_are_read_both_ways() {
    assert_eq!(
        kinds("/*!99999 SELECT '*/ DELETE FROM t -- '", MY),
        [Select, Delete]
    );
    // MariaDB 10: a MySQL 5.7+ version is a comment, `/*M!` code; MySQL: the reverse.
    assert!(kinds("/*!80000 '*/ /*M!100000 ; DELETE FROM t; */ -- '", MY).contains(&Delete));
    assert!(kinds("SELECT 1 /*M! ' */ ; DELETE FROM t; -- '", MY).contains(&Delete));
    // A skipped one may hold one comment: `/*!99999 /* */ ... */`.
    assert!(kinds("/*!99999 /* x */ SELECT ' */ ; DELETE FROM t; -- '", MY).contains(&Delete));
    // Outside a running executable comment `*/` is `*` then `/` (`*/*` opens a comment).
    assert!(kinds("SELECT 2 */* ' */ 3; DELETE FROM t; -- '", MY).contains(&Delete));
    assert_eq!(kinds("/*! SELECT 1 */", MY), [Select]);
    assert_eq!(kinds("/*!40101 SET NAMES utf8mb4 */;", MY), [Utility]);
    assert_eq!(kinds("/*M!999999\\- enable the sandbox mode */", MY), []);
    assert_eq!(kinds("/*!99999 SELECT 1 */", MY), [Select]);
    // Too many versions to read every way: refused unread.
    let many: String = (0..20).map(|v| format!("/*!{} x */", 40000 + v)).collect();
    assert_eq!(statements(many.as_bytes(), MY), Err(Unreadable));
}

/// Audit finding 4: a WITH query's main statement after a CYCLE clause.
#[test]
fn data_changing_words_anywhere_in_with() {
    let q = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n<1) \
             CYCLE n SET c USING p DELETE FROM t";
    assert_eq!(kinds(q, PG), [Select, Delete]);
    assert_eq!(
        kinds(format!("EXPLAIN ANALYZE {q}"), PG),
        [Utility, Select, Delete]
    );
    assert_eq!(
        kinds("EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1", PG),
        [Utility, Update]
    );
    assert_eq!(
        kinds("EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1", PG),
        [Utility, Ddl, Select]
    );
    assert_eq!(
        kinds(
            "WITH x AS (SELECT 1 FOR UPDATE) SELECT * FROM x FOR NO KEY UPDATE",
            PG
        ),
        [Select]
    );
    assert_eq!(
        kinds("WITH x AS (SELECT 1) SELECT insert('a', 1, 1, 'b')", MY),
        [Select]
    );
    assert_eq!(
        kinds(
            "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE",
            PG
        ),
        [Other, Delete]
    );
}

/// Audit finding 5: MariaDB statements that carry another.
#[test]
fn carried_statements() {
    assert_eq!(
        kinds("EXECUTE IMMEDIATE 'DELETE FROM t'", MY),
        [Utility, Delete]
    );
    assert_eq!(kinds("EXECUTE IMMEDIATE @q", MY), [Utility, Other]);
    assert_eq!(
        kinds("EXECUTE IMMEDIATE 'DELETE FROM t WHERE a = ?' USING 1", MY),
        [Utility, Delete]
    );
    assert_eq!(
        kinds("SET STATEMENT max_statement_time=60 FOR DROP TABLE t", MY),
        [Utility, Ddl]
    );
    assert_eq!(
        kinds("PREPARE `x FROM 'SELECT 1'` FROM 'DELETE FROM t'", MY),
        [Utility, Delete]
    );
    assert_eq!(
        kinds("PREPARE s FROM 'DELE' 'TE FROM t'", MY),
        [Utility, Delete]
    );
    assert_eq!(
        kinds("PREPARE s FROM 'DEL\\ETE FROM t'", MY),
        [Utility, Delete, Other]
    );
    assert_eq!(
        kinds("PREPARE s FROM CONCAT('DELE', 'TE FROM t')", MY),
        [Utility, Other]
    );
    // Compound statements outside stored programs.
    assert_eq!(
        kinds("BEGIN NOT ATOMIC DELETE FROM t; END", MY),
        [Transaction, Delete]
    );
    assert!(kinds("IF 1 THEN EXECUTE IMMEDIATE 'DROP TABLE t'; END IF", MY).contains(&Ddl));
    assert!(kinds("x: LOOP UPDATE t SET a = 1; END LOOP", MY).contains(&Update));
    assert_eq!(kinds("BEGIN WORK", MY), [Transaction]);
}

/// What the server reads differently with a setting or character set the proxy cannot
/// see: every reading is decided.
#[test]
fn settings_and_character_sets() {
    // ANSI_QUOTES with backslash escapes: "..." is a name without escapes.
    assert!(kinds("SELECT 1 AS \"\\\", '\\''; DELETE FROM t; -- '\"", MY).contains(&Delete));
    // GBK: 0x81 0x60 is one character, not a backtick.
    assert!(kinds(b"SELECT 1 AS \x81\x60; DELETE FROM t; -- \x60", MY).contains(&Delete));
    // SJIS: 0x95 0x5C is one character, the quote after it ends the string.
    let sjis = b"SELECT '\x95\\', 1 AS \x95\x60; DELETE FROM t; -- '\x60";
    assert!(kinds(sjis, MY).contains(&Delete));
    // latin1 reads `--` then 0xA0 as a comment, utf8 does not.
    assert_eq!(
        statements(b"SELECT 1 --\xA0 '\n; DELETE FROM t", MY),
        Err(Unreadable)
    );
}

proptest::proptest! {
    #[test]
    fn any_text_splits_without_panic(t in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let _ = statements(&t, PG);
        let _ = statements(&t, MY);
    }

    #[test]
    fn sql_like_text_splits_without_panic(t in "[a-zA-Z $'\"`;#/*!\\\\()\n\r0-9M-]{0,120}") {
        let _ = statements(t.as_bytes(), PG);
        let _ = statements(t.as_bytes(), MY);
    }
}

/// What a statement does besides its leading keyword: an upsert updates, REPLACE
/// deletes, `SELECT INTO` creates a table (PostgreSQL) or writes a server file (MySQL).
/// (Before, each was its leading keyword's kind only: `[select, insert]` let an upsert
/// overwrite rows and `SELECT ... INTO OUTFILE` write files.)
#[test]
fn what_statements_do_besides_their_keyword() {
    let pg = "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = 2";
    assert_eq!(kinds(pg, PG), [Insert, Update]);
    assert_eq!(
        kinds("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", PG),
        [Insert]
    );
    let my = "INSERT INTO t VALUES (1) ON DUPLICATE KEY UPDATE v = 2";
    assert_eq!(kinds(my, MY), [Insert, Update]);
    assert_eq!(kinds("REPLACE INTO t VALUES (1)", MY), [Insert, Delete]);
    assert_eq!(kinds("SELECT * INTO backup FROM t", PG), [Select, Ddl]);
    let out = "SELECT * FROM t INTO OUTFILE '/var/lib/mysql-files/t.csv'";
    assert_eq!(kinds(out, MY), [Select, Other]);
    assert_eq!(kinds("SELECT 1 INTO @x", MY), [Select]);
    assert_eq!(kinds("SELECT REPLACE(name, 'a', 'b') FROM t", MY), [Select]);
}
