//! Did-you-mean for misspelt keys and names, so an error can point at the fix.

/// The candidate nearest to `word`, if it is close enough to be a likely typo.
pub(super) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // Allow about one edit per four characters (at least one): enough for `aprovers` or
    // `db-admn`, not so much that unrelated short names are offered.
    let limit = (word.chars().count() / 4).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["approvers", "auto_approve", "admin"];
        assert_eq!(did_you_mean("aprovers", keys), Some("approvers"));
        assert_eq!(did_you_mean("admn", keys), Some("admin"));
        assert_eq!(did_you_mean("colour", keys), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("αβ", "αγ"), 1);
    }
}
