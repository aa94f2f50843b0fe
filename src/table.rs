//! The plain-text tables `status` and `verify` print for people: columns
//! left-aligned to their widest cell, two spaces apart, no trailing blanks.
//! One layout, so the commands' tables read alike.

/// Lays the header and `rows` out as aligned columns, one line each.
/// Every row has as many cells as the header.
pub fn aligned(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    let rows: Vec<&Vec<String>> = std::iter::once(&header).chain(rows).collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_their_widest_cell_without_trailing_blanks() {
        let rows = vec![vec!["a@x.test".to_owned(), "done".to_owned(), String::new()]];
        assert_eq!(
            aligned(&["USER", "STATE", "NOTE"], &rows),
            "USER      STATE  NOTE\na@x.test  done\n"
        );
    }
}
