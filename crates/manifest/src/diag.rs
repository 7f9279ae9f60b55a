//! Diagnostics: what went wrong, where, in the shape editors and CI logs understand.

use std::fmt;

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The source name: a path, or `-` for standard input.
    pub file: String,
    /// 1-based; 0 when the problem is the file itself (it cannot be read).
    pub line: u32,
    /// 1-based, in characters.
    pub column: u32,
    /// The field, e.g. `spec.ingress[0].from[1].podSelector`; empty for YAML syntax
    /// errors and problems with the whole document.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE:COL: PATH: MESSAGE`; the parts that are unknown are left out
    /// (`FILE: MESSAGE` for an unreadable file, no `PATH: ` for syntax errors).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found, in file order and then in reading order. Never empty when
/// returned as an error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    /// One diagnostic per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_leaves_out_unknown_parts() {
        let d = |line, path: &str| Diagnostic {
            file: "a.yaml".into(),
            line,
            column: 3,
            path: path.into(),
            message: "boom".into(),
        };
        let all = Diagnostics(vec![d(2, "spec.x"), d(4, ""), d(0, "")]);
        assert_eq!(
            all.to_string(),
            "a.yaml:2:3: spec.x: boom\na.yaml:4:3: boom\na.yaml: boom"
        );
    }
}
