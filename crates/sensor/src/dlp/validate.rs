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
    Mir,
    RuPay,
    Troy,
    Verve,
    Dankort,
    Laser,
    Solo,
    Switch,
}

/// Lengths as a bit set (bit n: n digits).
const fn lengths(from: u32, to: u32) -> u32 {
    (u32::MAX >> (31 - to)) & !((1 << from) - 1)
}
const L16: u32 = 1 << 16;
const L16_18_19: u32 = L16 | 1 << 18 | 1 << 19;

/// (first, last prefix of the range, written with the same number of digits; lengths;
/// brand), the first entry that matches wins. Ranges from the issuers' published IIN
/// tables, the more specific first. A generator's broader blocks (Maestro's 56-58 and
/// 6390) are left out: too wide to tell from other numbers.
const IIN: &[(u32, u32, u32, Brand)] = &[
    (4, 4, 1 << 13 | L16 | 1 << 19, Brand::Visa),
    (51, 55, L16, Brand::Mastercard),
    (2221, 2720, L16, Brand::Mastercard),
    (34, 34, 1 << 15, Brand::Amex),
    (37, 37, 1 << 15, Brand::Amex),
    (650002, 650027, L16_18_19, Brand::Verve),
    (6011, 6011, L16 | 1 << 19, Brand::Discover),
    (65, 65, L16 | 1 << 19, Brand::Discover),
    (644, 649, L16 | 1 << 19, Brand::Discover),
    (622126, 622925, L16 | 1 << 19, Brand::Discover),
    (3528, 3589, lengths(16, 19), Brand::Jcb),
    // JCB's numbers before the 35 range.
    (2131, 2131, 1 << 15, Brand::Jcb),
    (1800, 1800, 1 << 15, Brand::Jcb),
    // Diners issues 14 to 19 digits, but a two-digit prefix at 16 (36, 38, 39) takes in
    // too many other numbers: 16 digits from 300-305 and 3095 only (the corpora's benign
    // parameters hold Luhn-valid 16-digit numbers from 36 and 39).
    (36, 36, 1 << 14, Brand::Diners),
    (300, 305, 1 << 14 | L16, Brand::Diners),
    (3095, 3095, 1 << 14 | L16, Brand::Diners),
    (38, 39, 1 << 14, Brand::Diners),
    (62, 62, lengths(16, 19), Brand::UnionPay),
    (2200, 2204, lengths(16, 19), Brand::Mir),
    (508500, 508999, L16, Brand::RuPay),
    (9792, 9792, L16, Brand::Troy),
    (506099, 506198, L16_18_19, Brand::Verve),
    (507865, 507964, L16_18_19, Brand::Verve),
    (5019, 5019, L16, Brand::Dankort),
    (6706, 6706, lengths(16, 19), Brand::Laser),
    (6709, 6709, lengths(16, 19), Brand::Laser),
    (6771, 6771, lengths(16, 19), Brand::Laser),
    (6334, 6334, L16_18_19, Brand::Solo),
    (6767, 6767, L16_18_19, Brand::Solo),
    (564182, 564182, L16_18_19, Brand::Switch),
    (633110, 633110, L16_18_19, Brand::Switch),
    (6333, 6333, L16_18_19, Brand::Switch),
    (5018, 5018, lengths(12, 19), Brand::Maestro),
    (5020, 5020, lengths(12, 19), Brand::Maestro),
    (5038, 5038, lengths(12, 19), Brand::Maestro),
    (5893, 5893, lengths(12, 19), Brand::Maestro),
    (6304, 6304, lengths(12, 19), Brand::Maestro),
    (6759, 6759, lengths(12, 19), Brand::Maestro),
    (6761, 6763, lengths(12, 19), Brand::Maestro),
];

pub fn brand(digits: &[u8]) -> Option<Brand> {
    let n = digits.len();
    if !(1..=19).contains(&n) {
        return None;
    }
    // The number's first 1 to 6 digits, each as a number: `pre[k]`.
    let mut pre = [0u32; 7];
    for k in 1..=6.min(n) {
        pre[k] = pre[k - 1] * 10 + u32::from(digits[k - 1].wrapping_sub(b'0'));
    }
    IIN.iter()
        .find(|(first, last, lens, _)| {
            // A range's prefixes have as many digits as its first one.
            let k = first.checked_ilog10().map_or(1, |l| l as usize + 1);
            lens & (1 << n) != 0 && (*first..=*last).contains(&pre[k])
        })
        .map(|e| e.3)
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
    // Luhn first: nine in ten other numbers fail it, and it is cheaper than the walk
    // through the issuers' ranges.
    if !luhn(&digits) {
        return None;
    }
    brand(&digits)
}

/// The nine digits of an SSN (separators removed): area 001-899 except 666, group
/// not 00, serial not 0000.
pub fn ssn_digits(d: &[u8]) -> bool {
    if d.len() != 9 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num = |s: &[u8]| s.iter().fold(0u32, |a, c| a * 10 + u32::from(c - b'0'));
    let (area, group, serial) = (num(&d[..3]), num(&d[3..5]), num(&d[5..]));
    // The SSA voided the two numbers printed on sample cards (a wallet insert's
    // 078-05-1120, a pamphlet's 219-09-9999): test data, never a person's.
    let voided = d == b"078051120" || d == b"219099999";
    (1..=899).contains(&area) && area != 666 && group != 0 && serial != 0 && !voided
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

    /// `prefix` padded with zeros to `len` digits, with its Luhn check digit.
    fn number(prefix: &str, len: usize) -> Vec<u8> {
        let mut d = format!("{prefix:0<width$}", width = len - 1).into_bytes();
        d.push(b'0');
        let check = (0..10).find(|c| {
            d[len - 1] = b'0' + c;
            luhn(&d)
        });
        d[len - 1] = b'0' + check.unwrap();
        d
    }

    #[test]
    fn published_iin_ranges() {
        for (prefix, len, b) in [
            ("36", 14, Brand::Diners),
            ("3056", 16, Brand::Diners),
            ("38", 14, Brand::Diners),
            ("2200", 16, Brand::Mir),
            ("2204", 19, Brand::Mir),
            ("5085", 16, Brand::RuPay),
            ("9792", 16, Brand::Troy),
            ("506100", 19, Brand::Verve),
            ("650010", 18, Brand::Verve),
            ("5019", 16, Brand::Dankort),
            ("6771", 19, Brand::Laser),
            ("6767", 18, Brand::Solo),
            ("633110", 16, Brand::Switch),
            ("6763", 13, Brand::Maestro),
            ("650010", 16, Brand::Verve),
            ("6500", 16, Brand::Discover),
        ] {
            let d = number(prefix, len);
            assert_eq!(brand(&d), Some(b), "{}", String::from_utf8_lossy(&d));
            assert_eq!(card(&d), Some(b));
        }
        for (prefix, len) in [
            ("36", 13),
            ("36", 16),
            ("39", 16),
            ("638", 16),
            ("2205", 16),
            ("5084", 16),
            ("9792", 17),
            ("637", 19),
            ("5019", 15),
            ("1", 15),
            ("8", 16),
        ] {
            assert_eq!(brand(&number(prefix, len)), None, "{prefix} {len}");
        }
        assert_eq!(brand(b""), None);
        assert_eq!(brand(&[b'4'; 40]), None);
    }

    #[test]
    fn ssns() {
        assert!(!ssn_written(b"078-05-1120") && !ssn_written(b"219 09 9999"));
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
