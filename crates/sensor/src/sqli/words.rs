//! The SQL vocabulary the judge reasons about: which words are logic, comparison,
//! clause or statement keywords, which are functions (and which functions only an
//! attacker calls), and which are system catalog names. The union of MySQL,
//! PostgreSQL, SQL Server, Oracle and SQLite, because the database behind a parameter
//! is unknown.

use crate::wordhash::WordState;
use std::collections::HashMap;
use std::sync::LazyLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Word {
    And,
    Or,
    Xor,
    Not,
    /// Infix word operators with arithmetic meaning: DIV, MOD.
    OpWord,
    /// LIKE, RLIKE, REGEXP, ILIKE, GLOB, SIMILAR, SOUNDS, MATCH-like comparisons.
    CmpWord,
    Is,
    In,
    Between,
    /// NULL, TRUE, FALSE, CURRENT_USER, ... (operands without parentheses).
    Literal,
    /// BINARY, DISTINCT, INTERVAL, ... prefix words that keep an operand expected.
    Prefix,
    Union,
    Select,
    From,
    Where,
    /// ORDER, GROUP, HAVING, LIMIT, OFFSET, INTO, PROCEDURE, FOR, AS, ...
    Clause,
    /// BY, ALL, ON, JOIN, ... words that only follow other keywords.
    Connector,
    /// Statements that can start a stacked query.
    Statement,
    /// WAITFOR (SQL Server's delay statement).
    Waitfor,
    Case,
    When,
    Then,
    Else,
    End,
    /// Also a function when followed by `(` (IF, LEFT, RIGHT, REPLACE, INSERT, CHAR, ...
    /// are keywords too; these are tagged by their keyword meaning and listed in
    /// [`also_function`]).
    Func(FuncClass),
    /// System catalog or dangerous procedure names (information_schema, xp_cmdshell, ...).
    Catalog,
    /// Any other identifier.
    Plain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FuncClass {
    /// Reveals the server (version, user, database, ...): no form field needs them.
    Info,
    /// Delays or burns CPU: the tool of blind injection.
    Time,
    /// Ordinary SQL functions.
    General,
}

impl Word {
    /// Reserved words MySQL splits off a number (`1union` is `1 union`).
    pub fn is_keyword(self) -> bool {
        !matches!(self, Word::Plain | Word::Func(_) | Word::Catalog)
    }
}

const LOGIC: &[(&str, Word)] = &[
    ("and", Word::And),
    ("or", Word::Or),
    ("xor", Word::Xor),
    ("not", Word::Not),
    ("div", Word::OpWord),
    ("mod", Word::OpWord),
    ("like", Word::CmpWord),
    ("rlike", Word::CmpWord),
    ("regexp", Word::CmpWord),
    ("ilike", Word::CmpWord),
    ("glob", Word::CmpWord),
    ("similar", Word::CmpWord),
    ("sounds", Word::CmpWord),
    ("escape", Word::CmpWord),
    ("is", Word::Is),
    ("in", Word::In),
    ("between", Word::Between),
    ("null", Word::Literal),
    ("true", Word::Literal),
    ("false", Word::Literal),
    ("unknown", Word::Literal),
    ("current_user", Word::Literal),
    ("current_date", Word::Literal),
    ("current_time", Word::Literal),
    ("current_timestamp", Word::Literal),
    ("localtime", Word::Literal),
    ("localtimestamp", Word::Literal),
    ("session_user", Word::Literal),
    ("system_user", Word::Literal),
    ("utc_date", Word::Literal),
    ("utc_time", Word::Literal),
    ("binary", Word::Prefix),
    ("distinct", Word::Prefix),
    ("interval", Word::Prefix),
    ("collate", Word::OpWord),
    ("exists", Word::Prefix),
    ("any", Word::Prefix),
    ("some", Word::Prefix),
    ("union", Word::Union),
    ("select", Word::Select),
    ("from", Word::From),
    ("where", Word::Where),
    ("order", Word::Clause),
    ("group", Word::Clause),
    ("having", Word::Clause),
    ("limit", Word::Clause),
    ("offset", Word::Clause),
    ("into", Word::Clause),
    ("procedure", Word::Clause),
    ("for", Word::Clause),
    ("as", Word::Clause),
    ("intersect", Word::Clause),
    ("except", Word::Clause),
    ("minus", Word::Clause),
    ("top", Word::Clause),
    ("by", Word::Connector),
    ("all", Word::Connector),
    ("on", Word::Connector),
    ("join", Word::Connector),
    ("outfile", Word::Connector),
    ("dumpfile", Word::Connector),
    ("values", Word::Connector),
    ("set", Word::Statement),
    ("insert", Word::Statement),
    ("update", Word::Statement),
    ("delete", Word::Statement),
    ("drop", Word::Statement),
    ("create", Word::Statement),
    ("alter", Word::Statement),
    ("truncate", Word::Statement),
    ("rename", Word::Statement),
    ("exec", Word::Statement),
    ("execute", Word::Statement),
    ("declare", Word::Statement),
    ("shutdown", Word::Statement),
    ("grant", Word::Statement),
    ("revoke", Word::Statement),
    ("call", Word::Statement),
    ("load", Word::Statement),
    ("handler", Word::Statement),
    ("goto", Word::Statement),
    ("begin", Word::Statement),
    ("if", Word::Statement),
    ("replace", Word::Statement),
    ("copy", Word::Statement),
    ("attach", Word::Statement),
    ("pragma", Word::Statement),
    ("prepare", Word::Statement),
    ("use", Word::Statement),
    ("merge", Word::Statement),
    ("open", Word::Statement),
    ("fetch", Word::Statement),
    ("backup", Word::Statement),
    ("dbcc", Word::Statement),
    ("show", Word::Statement),
    ("describe", Word::Statement),
    ("explain", Word::Statement),
    ("waitfor", Word::Waitfor),
    ("case", Word::Case),
    ("when", Word::When),
    ("then", Word::Then),
    ("else", Word::Else),
    ("end", Word::End),
];

/// Information functions that take no argument: called with one, the name is some
/// other (user-defined) function.
pub const NO_ARGS: &[&str] = &[
    "version",
    "user",
    "current_user",
    "session_user",
    "system_user",
    "database",
    "schema",
    "connection_id",
    "current_database",
    "current_schema",
    "pg_backend_pid",
    "row_count",
    "found_rows",
    "sqlite_version",
];

/// Functions only an attacker has a reason to call from a parameter.
const INFO_FUNCS: &[&str] = &[
    "version",
    "user",
    "current_user",
    "session_user",
    "system_user",
    "database",
    "schema",
    "db_name",
    "user_name",
    "user_id",
    "suser_name",
    "suser_sname",
    "host_name",
    "connection_id",
    "last_insert_id",
    "current_database",
    "current_schema",
    "current_setting",
    "pg_backend_pid",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_stat_file",
    "pg_ls_dir",
    "lo_import",
    "lo_export",
    "lo_get",
    "load_file",
    "sqlite_version",
    "sqlite_compileoption_used",
    "sqlite_compileoption_get",
    "updatexml",
    "extractvalue",
    "name_const",
    "row_count",
    "found_rows",
    "is_srvrolemember",
    "is_member",
    "has_dbaccess",
    "object_id",
    "object_name",
    "schema_name",
    "db_id",
    "sys_context",
    "query_to_xml",
    "database_to_xml",
    "xmltype",
    "dbms_xmlgen",
    "serverproperty",
    "fn_varbintohexstr",
    "openrowset",
    "opendatasource",
    "openquery",
    "utl_http",
    "utl_inaddr",
    "ctxsys",
    "dbms_utility",
    "dbms_xmlquery",
    "dbms_java",
    "sys_connect_by_path",
    "sys_eval",
    "sys_exec",
    "gtid_subset",
    "json_keys",
];

const TIME_FUNCS: &[&str] = &[
    "sleep",
    "benchmark",
    "pg_sleep",
    "pg_sleep_for",
    "get_lock",
    "randomblob",
    "dbms_lock",
    "dbms_pipe",
    "user_lock",
    "receive_message",
];

const GENERAL_FUNCS: &[&str] = &[
    "ascii",
    "char",
    "chr",
    "nchar",
    "unicode",
    "ord",
    "char_length",
    "character_length",
    "length",
    "len",
    "datalength",
    "bit_length",
    "octet_length",
    "substring",
    "substr",
    "mid",
    "left",
    "right",
    "concat",
    "concat_ws",
    "group_concat",
    "string_agg",
    "listagg",
    "array_agg",
    "array_to_string",
    "hex",
    "unhex",
    "bin",
    "oct",
    "conv",
    "cast",
    "convert",
    "lower",
    "upper",
    "lcase",
    "ucase",
    "trim",
    "ltrim",
    "rtrim",
    "reverse",
    "repeat",
    "replicate",
    "space",
    "lpad",
    "rpad",
    "instr",
    "locate",
    "position",
    "strcmp",
    "soundex",
    "difference",
    "md5",
    "sha",
    "sha1",
    "sha2",
    "crc32",
    "aes_encrypt",
    "aes_decrypt",
    "des_encrypt",
    "encode",
    "decode",
    "compress",
    "uncompress",
    "elt",
    "field",
    "find_in_set",
    "make_set",
    "export_set",
    "format",
    "ifnull",
    "nullif",
    "isnull",
    "coalesce",
    "iif",
    "nvl",
    "nvl2",
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "floor",
    "ceil",
    "ceiling",
    "round",
    "rand",
    "random",
    "abs",
    "sign",
    "pi",
    "sin",
    "cos",
    "tan",
    "atan",
    "atan2",
    "asin",
    "acos",
    "cot",
    "ln",
    "log",
    "log2",
    "log10",
    "pow",
    "power",
    "sqrt",
    "greatest",
    "least",
    "now",
    "sysdate",
    "curdate",
    "curtime",
    "getdate",
    "newid",
    "uuid",
    "date_format",
    "from_unixtime",
    "unix_timestamp",
    "str_to_date",
    "unistr",
    "quotename",
    "stuff",
    "charindex",
    "patindex",
    "json_extract",
    "json_search",
    "json_array_length",
    "json_object",
    "json_array",
    "to_char",
    "to_number",
    "regexp_substr",
    "regexp_like",
    "regexp_replace",
    "generate_series",
    "zeroblob",
    "typeof",
    "printf",
    "quote",
    "likelihood",
    "unlikely",
    "substring_index",
    "weight_string",
    "inet_aton",
    "inet_ntoa",
    "row",
    "array",
    "to_base64",
    "from_base64",
    "octet",
    "rownum",
];

/// Words that are keywords but also functions when a `(` follows.
pub fn also_function(w: Word, lower: &[u8]) -> bool {
    matches!(
        lower,
        b"if"
            | b"left"
            | b"right"
            | b"replace"
            | b"insert"
            | b"char"
            | b"mod"
            | b"div"
            | b"values"
            | b"database"
            | b"schema"
            | b"user"
            | b"binary"
            | b"exists"
            | b"format"
            | b"exec"
            | b"execute"
            | b"collate"
            | b"interval"
            | b"position"
            | b"any"
            | b"some"
            | b"convert"
            | b"cast"
            | b"row"
            | b"array"
            | b"like"
            | b"glob"
            | b"regexp"
    ) || matches!(w, Word::Func(_) | Word::Literal)
}

/// Catalog views whose names read as an application's own identifiers: alone (a
/// parameter named `all_users`, a form value `user_tables`, both in arjun's list of
/// common parameter names) they are words, not an injection.
const PLAIN_VIEWS: &[&str] = &[
    "all_tables",
    "all_tab_columns",
    "all_users",
    "user_tables",
    "user_tab_columns",
    "dba_users",
    "dba_tables",
    "pg_user",
    "pg_tables",
    "pg_database",
    "pg_class",
    "pg_namespace",
    "pg_proc",
];

pub(super) fn plain_view(w: &[u8]) -> bool {
    PLAIN_VIEWS
        .iter()
        .any(|v| w.eq_ignore_ascii_case(v.as_bytes()))
}

/// System catalogs and dangerous procedures (and, with them, [`PLAIN_VIEWS`]).
const CATALOG: &[&str] = &[
    "information_schema",
    "sysobjects",
    "syscolumns",
    "sysusers",
    "sysdatabases",
    "syslogins",
    "sysprocesses",
    "sysservers",
    "systypes",
    "pg_catalog",
    "pg_shadow",
    "pg_authid",
    "sqlite_master",
    "sqlite_schema",
    "sqlite_temp_master",
    "msysaccessobjects",
    "msysaccessstorage",
    "msysobjects",
    "msysqueries",
    "msysrelationships",
    "msysaces",
    "xp_cmdshell",
    "xp_regread",
    "xp_regwrite",
    "xp_dirtree",
    "xp_fileexist",
    "xp_servicecontrol",
    "xp_availablemedia",
    "xp_makecab",
    "xp_ntsec_enumdomains",
    "xp_terminate_process",
    "sp_executesql",
    "sp_password",
    "sp_oacreate",
    "sp_oamethod",
    "sp_configure",
    "sp_addsrvrolemember",
    "sp_addlogin",
    "sp_makewebtask",
    "sp_execute",
    "northwind",
    "mysql.user",
    "master..",
    "innodb_table_stats",
];

static WORDS: LazyLock<HashMap<&'static [u8], Word, WordState>> = LazyLock::new(|| {
    let mut m: HashMap<&'static [u8], Word, WordState> = HashMap::default();
    for f in GENERAL_FUNCS {
        m.insert(f.as_bytes(), Word::Func(FuncClass::General));
    }
    for f in INFO_FUNCS {
        m.insert(f.as_bytes(), Word::Func(FuncClass::Info));
    }
    for f in TIME_FUNCS {
        m.insert(f.as_bytes(), Word::Func(FuncClass::Time));
    }
    for c in CATALOG.iter().chain(PLAIN_VIEWS) {
        m.insert(c.as_bytes(), Word::Catalog);
    }
    // Keywords last: `current_user` is an operand without parentheses first.
    for (k, w) in LOGIC {
        m.insert(k.as_bytes(), *w);
    }
    m
});

/// Longest word in the tables; longer words are plain identifiers.
const MAX_WORD: usize = 32;

/// Classify an identifier (ASCII case-insensitive).
pub fn classify(word: &[u8]) -> Word {
    if word.len() > MAX_WORD {
        return Word::Plain;
    }
    // Most words of most values are no keyword; the (length, first, last letter)
    // shapes of the table reject them before lower-casing and hashing.
    let Some(&first) = word.first() else {
        return Word::Plain;
    };
    let last = word[word.len() - 1];
    if !SHAPES[word.len()][shape_class(first)][shape_class(last)] {
        return Word::Plain;
    }
    let mut buf = [0u8; MAX_WORD];
    let lower = &mut buf[..word.len()];
    for (d, s) in lower.iter_mut().zip(word) {
        *d = s.to_ascii_lowercase();
    }
    WORDS.get(&lower[..]).copied().unwrap_or(Word::Plain)
}

/// A byte's class in [`SHAPES`]: its letter (case-insensitive), or 26 for anything else.
fn shape_class(b: u8) -> usize {
    let l = b.to_ascii_lowercase();
    if l.is_ascii_lowercase() {
        usize::from(l - b'a')
    } else {
        26
    }
}

/// `SHAPES[len][first][last]` (classes of [`shape_class`]): does any key of [`WORDS`] have
/// that length, first and last byte? Most words of most values are no keyword, and this
/// rejects them before lower-casing and hashing.
static SHAPES: LazyLock<Box<[[[bool; 27]; 27]; MAX_WORD + 1]>> = LazyLock::new(|| {
    let mut t = Box::new([[[false; 27]; 27]; MAX_WORD + 1]);
    for k in WORDS.keys() {
        if let (Some(&f), Some(&l)) = (k.first(), k.last())
            && k.len() <= MAX_WORD
        {
            t[k.len()][shape_class(f)][shape_class(l)] = true;
        }
    }
    t
});

/// Lower-cased copy of a short word for [`also_function`], `None` when too long.
pub fn lower(word: &[u8]) -> Option<([u8; MAX_WORD], usize)> {
    if word.len() > MAX_WORD {
        return None;
    }
    let mut buf = [0u8; MAX_WORD];
    for (d, s) in buf.iter_mut().zip(word) {
        *d = s.to_ascii_lowercase();
    }
    Some((buf, word.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_case_insensitively() {
        assert_eq!(classify(b"UnIoN"), Word::Union);
        assert_eq!(classify(b"SLEEP"), Word::Func(FuncClass::Time));
        assert_eq!(classify(b"version"), Word::Func(FuncClass::Info));
        assert_eq!(classify(b"current_user"), Word::Literal);
        assert_eq!(classify(b"Information_Schema"), Word::Catalog);
        assert_eq!(classify(b"brien"), Word::Plain);
        assert_eq!(classify(&[b'a'; 100]), Word::Plain);
    }

    /// The shape filter lets every word of the table through, in any case.
    #[test]
    fn every_table_word_passes_the_shape_filter() {
        for (k, w) in WORDS.iter() {
            assert_eq!(classify(k), *w, "{}", String::from_utf8_lossy(k));
            assert_eq!(classify(&k.to_ascii_uppercase()), *w);
        }
    }
}
