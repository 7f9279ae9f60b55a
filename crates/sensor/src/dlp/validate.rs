//! Validators that turn a pattern hit into a finding: Luhn and issuer ranges for
//! cards, the SSA's allocation rules for SSNs, and the shape rules a regular
//! expression cannot say (one separator style per number, the brand's grouping).

/// Card brands by issuer identification number (IIN) prefix and the lengths each
/// issues. The policy is strict: a Luhn-valid number with no issuer prefix, or with a
/// length its issuer never uses, is not a card.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Brand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Jcb,
    Diners,
    UnionPay,
    Maestro,
}

pub fn brand(digits: &[u8]) -> Option<Brand> {
    let n = digits.len();
    let prefix = |k: usize| -> u32 {
        digits[..k.min(n)]
            .iter()
            .fold(0, |a, d| a * 10 + u32::from(d - b'0'))
    };
    let (p2, p3, p4, p6) = (prefix(2), prefix(3), prefix(4), prefix(6));
    if digits[0] == b'4' && matches!(n, 13 | 16 | 19) {
        return Some(Brand::Visa);
    }
    if ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && n == 16 {
        return Some(Brand::Mastercard);
    }
    if matches!(p2, 34 | 37) && n == 15 {
        return Some(Brand::Amex);
    }
    if (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || (622126..=622925).contains(&p6))
        && matches!(n, 16 | 19)
    {
        return Some(Brand::Discover);
    }
    // (15 digits from 2131 and 1800: JCB's numbers before the 35 range.)
    if ((3528..=3589).contains(&p4) && (16..=19).contains(&n))
        || (matches!(p4, 2131 | 1800) && n == 15)
    {
        return Some(Brand::Jcb);
    }
    if ((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 || p3 == 309) && n == 14 {
        return Some(Brand::Diners);
    }
    if p2 == 62 && (16..=19).contains(&n) {
        return Some(Brand::UnionPay);
    }
    // Maestro's own ranges (not the 56-58 and 6390 blocks card generators also use,
    // which are too broad to tell from other numbers), 12 to 19 digits.
    if matches!(
        p4,
        5018 | 5020 | 5038 | 5893 | 6304 | 6759 | 6761 | 6762 | 6763
    ) && (12..=19).contains(&n)
    {
        return Some(Brand::Maestro);
    }
    None
}

pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Group lengths a card may be written in: plain, fours (the last group shorter), or
/// the brand's own grouping (Amex 4-6-5, Diners 4-6-4, 19 digits as 6-13).
fn grouping_ok(groups: &[usize], total: usize) -> bool {
    if groups.len() == 1 {
        return true;
    }
    let fours = groups[..groups.len() - 1].iter().all(|&g| g == 4)
        && (1..=4).contains(groups.last().unwrap_or(&0));
    fours
        || (total == 15 && groups == [4, 6, 5])
        || (total == 14 && groups == [4, 6, 4])
        || (total == 19 && groups == [6, 13])
}

/// A card number as written (digits with one kind of separator): its brand if valid.
pub fn card(text: &[u8]) -> Option<Brand> {
    let mut digits = Vec::with_capacity(19);
    let mut groups = Vec::with_capacity(5);
    let mut sep = None;
    let mut run = 0;
    for &c in text {
        if c.is_ascii_digit() {
            digits.push(c);
            run += 1;
        } else {
            if *sep.get_or_insert(c) != c || run == 0 {
                return None;
            }
            groups.push(run);
            run = 0;
        }
    }
    groups.push(run);
    if !(12..=19).contains(&digits.len()) || !grouping_ok(&groups, digits.len()) {
        return None;
    }
    let b = brand(&digits)?;
    luhn(&digits).then_some(b)
}

/// The nine digits of an SSN (separators removed): area 001-899 except 666, group
/// not 00, serial not 0000.
pub fn ssn_digits(d: &[u8]) -> bool {
    if d.len() != 9 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num = |s: &[u8]| s.iter().fold(0u32, |a, c| a * 10 + u32::from(c - b'0'));
    let (area, group, serial) = (num(&d[..3]), num(&d[3..5]), num(&d[5..]));
    (1..=899).contains(&area) && area != 666 && group != 0 && serial != 0
}

/// `123-45-6789` or `123 45 6789` (one separator style).
pub fn ssn_written(text: &[u8]) -> bool {
    if text.len() != 11 || text[3] != text[6] || !matches!(text[3], b'-' | b' ') {
        return false;
    }
    let digits: Vec<u8> = text.iter().copied().filter(u8::is_ascii_digit).collect();
    ssn_digits(&digits)
}

/// An e-mail address the regex found: the local part and domain labels are sane.
pub fn email(text: &[u8]) -> bool {
    let Some(at) = text.iter().rposition(|&c| c == b'@') else {
        return false;
    };
    let (local, domain) = (&text[..at], &text[at + 1..]);
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with(b".")
        && !local.ends_with(b".")
        && !local.windows(2).any(|w| w == b"..")
        && domain.contains(&b'.')
        && domain
            .split(|&c| c == b'.')
            .all(|l| !l.is_empty() && !l.starts_with(b"-") && !l.ends_with(b"-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards() {
        assert_eq!(card(b"4111 1111 1111 1111"), Some(Brand::Visa));
        assert_eq!(card(b"4111-1111-1111-1111"), Some(Brand::Visa));
        assert_eq!(card(b"4111 1111-1111 1111"), None, "mixed separators");
        assert_eq!(card(b"4111111111111112"), None, "Luhn");
        assert_eq!(card(b"378282246310005"), Some(Brand::Amex));
        assert_eq!(card(b"3782 822463 10005"), Some(Brand::Amex));
        assert_eq!(card(b"5555555555554444"), Some(Brand::Mastercard));
        assert_eq!(card(b"2223000048400011"), Some(Brand::Mastercard));
        assert_eq!(card(b"6011111111111117"), Some(Brand::Discover));
        assert_eq!(card(b"3530111333300000"), Some(Brand::Jcb));
        assert_eq!(card(b"30569309025904"), Some(Brand::Diners));
        assert_eq!(card(b"6200000000000005"), Some(Brand::UnionPay));
        // Held-out (Faker's generator): Maestro of 12 digits, JCB's old 15-digit ranges.
        assert_eq!(card(b"5018-7469-2277"), Some(Brand::Maestro));
        assert_eq!(card(b"6759 1114 7675"), Some(Brand::Maestro));
        assert_eq!(card(b"213167392810362"), Some(Brand::Jcb));
        assert_eq!(card(b"1800 8981 9225 215"), Some(Brand::Jcb));
        assert_eq!(card(b"5018-7469-2278"), None, "Luhn");
        assert_eq!(card(b"4111-1111-1117"), None, "12 digits: Maestro's only");
        // Luhn-valid, no issuer: 0000 0000 0000 0000
        assert_eq!(card(b"0000000000000000"), None);
        // Visa prefix with a length Visa never issues (17)
        assert_eq!(card(b"41111111111111110"), None);
    }

    #[test]
    fn ssns() {
        assert!(ssn_written(b"123-45-6789"));
        assert!(ssn_written(b"123 45 6789"));
        assert!(!ssn_written(b"123-45 6789"));
        assert!(!ssn_written(b"666-45-6789"));
        assert!(!ssn_written(b"000-45-6789"));
        assert!(!ssn_written(b"900-45-6789"));
        assert!(!ssn_written(b"123-00-6789"));
        assert!(!ssn_written(b"123-45-0000"));
    }

    #[test]
    fn emails() {
        assert!(email(b"a.b@example.com"));
        assert!(!email(b".a@example.com"));
        assert!(!email(b"a@example"));
        assert!(!email(b"a@-x.com"));
    }
}
