//! Tables for people: each column as wide as its widest cell (as `kubectl get` prints
//! them), at least its header's default and at most [`Columns::MAX`] (a longer cell
//! overflows rather than widening every row); the last column runs to the end of the
//! line.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Columns(Vec<usize>);

impl Columns {
    pub const MAX: usize = 64;

    /// Columns of these least widths (one per column but the last) that fit `rows`.
    pub fn fit<R: AsRef<[String]>>(least: &[usize], rows: &[R]) -> Self {
        let mut w = least.to_vec();
        for row in rows {
            for (k, cell) in row.as_ref().iter().take(w.len()).enumerate() {
                w[k] = w[k].max(cell.chars().count().min(Self::MAX));
            }
        }
        Columns(w)
    }

    #[cfg(test)]
    pub fn widths(&self) -> &[usize] {
        &self.0
    }

    /// One row: each cell padded to its column, two blanks between columns.
    pub fn line<S: AsRef<str>>(&self, cells: &[S]) -> String {
        let mut out = String::new();
        for (k, cell) in cells.iter().enumerate() {
            let cell = cell.as_ref();
            match self.0.get(k) {
                Some(&w) if k + 1 < cells.len() => {
                    out.push_str(cell);
                    let len = cell.chars().count();
                    out.extend(std::iter::repeat_n(' ', w.saturating_sub(len) + 2));
                }
                _ => out.push_str(cell),
            }
        }
        out.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::Columns;

    #[test]
    fn columns_fit_cells_within_the_cap() {
        let rows = vec![
            vec!["a".to_string(), "b".into(), "c".into()],
            vec!["longer".to_string(), "x".repeat(100), "last".into()],
        ];
        let c = Columns::fit(&[3, 2], &rows);
        assert_eq!(c.widths(), &[6, Columns::MAX]);
        assert_eq!(c.line(&rows[0])[..9].to_string(), "a       b");
        assert!(c.line(&rows[1]).ends_with("  last"));
        assert_eq!(c.line(&["h1", "h2", "h3"]).find("h3"), Some(6 + 2 + 64 + 2));
    }
}
