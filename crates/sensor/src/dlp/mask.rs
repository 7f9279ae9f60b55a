//! What a validated hit looks like when reported: the secret part starred, what is not
//! secret (separators, a card's first and last four, a key's type) kept.

use super::{Check, DlpKind, Rule, validate};

pub(super) fn validate_and_mask(rule: &Rule, text: &[u8]) -> Option<(String, Option<String>)> {
    let detail = match rule.check {
        Check::None => None,
        Check::Card => Some(format!("{:?}", validate::card(text)?).to_lowercase()),
        Check::SsnWritten => validate::ssn_written(text).then_some(None)?,
        Check::SsnKeyword => validate::ssn_digits(&text[text.len() - 9..]).then_some(None)?,
        Check::Email => validate::email(text).then_some(None)?,
    };
    let masked = match rule.kind {
        Some(DlpKind::CreditCard) => mask_digits(text, 4, 4),
        Some(DlpKind::Ssn) => mask_digits(text, 0, 4),
        Some(DlpKind::AwsAccessKey) => mask_middle(text, 4, 4),
        Some(DlpKind::PrivateKey) => {
            // The header names the key type and is not secret; the body never is shown.
            let header = String::from_utf8_lossy(text)
                .replace("%20", " ")
                .replace('+', " ");
            return Some((format!("{header} [masked]"), Some(header)));
        }
        Some(DlpKind::Email) => {
            let at = text.iter().rposition(|&c| c == b'@').unwrap_or(0);
            let mut m = mask_middle(&text[..at], 1, 0);
            m.push_str(&String::from_utf8_lossy(&text[at..]));
            m
        }
        None => {
            if text.len() >= 8 {
                mask_middle(text, 2, 2)
            } else {
                "*".repeat(String::from_utf8_lossy(text).chars().count().max(1))
            }
        }
    };
    Some((masked, detail))
}

/// Keep the first `head` and last `tail` digits, star the other digits, keep
/// separators (`4111 **** **** 1111`, `***-**-6789`).
fn mask_digits(text: &[u8], head: usize, tail: usize) -> String {
    let total = text.iter().filter(|c| c.is_ascii_digit()).count();
    let mut seen = 0;
    text.iter()
        .map(|&c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen <= head || seen > total - tail {
                    c as char
                } else {
                    '*'
                }
            } else {
                c as char
            }
        })
        .collect()
}

/// Keep the first `head` and last `tail` bytes (`AKIA************MPLE`).
fn mask_middle(text: &[u8], head: usize, tail: usize) -> String {
    let n = text.len();
    text.iter()
        .enumerate()
        .map(|(i, &c)| {
            if i < head || i + tail >= n {
                if c.is_ascii_graphic() { c as char } else { '?' }
            } else {
                '*'
            }
        })
        .collect()
}
