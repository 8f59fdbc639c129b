//! Word error rate, for tests and benchmarks of transcription quality.

/// Lower-cases, maps punctuation to spaces (keeping apostrophes inside
/// words), spells digits-only words as they are, and splits on whitespace.
pub fn normalize(text: &str) -> Vec<String> {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    cleaned
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word-level edit distance (substitutions + deletions + insertions) between
/// the normalized reference and hypothesis.
pub fn word_edits(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r = normalize(reference);
    let h = normalize(hypothesis);
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    let mut cur = vec![0; h.len() + 1];
    for (i, rw) in r.iter().enumerate() {
        cur[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    (prev[h.len()], r.len())
}

/// Word error rate: edits divided by the reference's word count (0 when both
/// are empty, 1 per inserted word when only the reference is empty).
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (edits, n) = word_edits(reference, hypothesis);
    if n == 0 {
        return edits as f64;
    }
    edits as f64 / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_and_punctuation() {
        assert_eq!(
            normalize("Hello, World! It's"),
            vec!["hello", "world", "it's"]
        );
    }

    #[test]
    fn counts_edits() {
        assert_eq!(wer("the cat sat", "The cat sat."), 0.0);
        assert!((wer("the cat sat on the mat", "the cat sat on mat") - 1.0 / 6.0).abs() < 1e-9);
        assert_eq!(word_edits("a b c", "a x c d"), (2, 3));
        assert_eq!(wer("", ""), 0.0);
        assert_eq!(wer("", "noise"), 1.0);
    }
}
