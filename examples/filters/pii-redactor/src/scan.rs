//! Hand-written scanner that finds and replaces personal data in text.
//!
//! Matches only ever start and end on ASCII characters, so replacing them in
//! valid UTF-8 keeps it valid UTF-8.

/// Which kinds of personal data to redact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds {
    pub email: bool,
    pub phone: bool,
    pub card: bool,
    pub ssn: bool,
}

impl Kinds {
    pub const ALL: Kinds = Kinds {
        email: true,
        phone: true,
        card: true,
        ssn: true,
    };
    pub const NONE: Kinds = Kinds {
        email: false,
        phone: false,
        card: false,
        ssn: false,
    };

    /// Turns on the kind called `name`; false if there is no such kind.
    pub fn enable(&mut self, name: &str) -> bool {
        match name {
            "email" => self.email = true,
            "phone" => self.phone = true,
            "card" => self.card = true,
            "ssn" => self.ssn = true,
            _ => return false,
        }
        true
    }
}

pub const EMAIL: &str = "[REDACTED EMAIL]";
pub const PHONE: &str = "[REDACTED PHONE]";
pub const CARD: &str = "[REDACTED CARD]";
pub const SSN: &str = "[REDACTED SSN]";

/// Replaces the personal data in `text`; returns the new text and how many
/// items were replaced.
pub fn redact(text: &str, kinds: &Kinds) -> (String, usize) {
    let (out, n) = redact_bytes(text.as_bytes(), kinds);
    // Matches start and end on ASCII bytes, so this never fails.
    let out = String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    (out, n)
}

/// Byte version of [`redact`], for bodies that may not be valid UTF-8.
pub fn redact_bytes(s: &[u8], kinds: &Kinds) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(s.len());
    let mut count = 0;
    let (mut i, mut copied) = (0, 0);
    while i < s.len() {
        let found = find_at(s, i, copied, kinds);
        if let Some((end, label)) = found {
            out.extend_from_slice(&s[copied..i]);
            out.extend_from_slice(label.as_bytes());
            count += 1;
            i = end;
            copied = end;
        } else {
            i += 1;
        }
    }
    out.extend_from_slice(&s[copied..]);
    (out, count)
}

/// Tries every enabled kind at position `i`, in order: e-mail, SSN, card,
/// phone (card before phone so card numbers are not reported as phones).
/// Text before `floor` was already replaced and does not count as context.
fn find_at(s: &[u8], i: usize, floor: usize, kinds: &Kinds) -> Option<(usize, &'static str)> {
    if kinds.email && !(i > 0 && is_local(s[i - 1])) {
        if let Some(end) = email_at(s, i) {
            return Some((end, EMAIL));
        }
    }
    if !number_may_start(s, i, floor) {
        return None;
    }
    if kinds.ssn {
        if let Some(end) = ssn_at(s, i) {
            return Some((end, SSN));
        }
    }
    if kinds.card {
        if let Some(end) = card_at(s, i) {
            return Some((end, CARD));
        }
    }
    if kinds.phone {
        if let Some(end) = phone_at(s, i) {
            return Some((end, PHONE));
        }
    }
    None
}

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"._%+-".contains(&c)
}

fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
}

/// `local@domain.tld` starting at `i`; returns the end offset.
fn email_at(s: &[u8], i: usize) -> Option<usize> {
    let local_end = i + s[i..].iter().take_while(|&&c| is_local(c)).count();
    if local_end == i || s.get(local_end) != Some(&b'@') {
        return None;
    }
    let start = local_end + 1;
    let mut end = start + s[start..].iter().take_while(|&&c| is_domain(c)).count();
    while end > start && matches!(s[end - 1], b'.' | b'-') {
        end -= 1;
    }
    let domain = &s[start..end];
    let mut labels = domain.split(|&c| c == b'.');
    let tld = labels.next_back()?;
    let ok = domain.contains(&b'.')
        && labels.all(|l| !l.is_empty())
        && tld.len() >= 2
        && tld.iter().all(u8::is_ascii_alphabetic);
    ok.then_some(end)
}

/// A number can start here: at a digit, `+` or `(`, not in the middle of a
/// word, a decimal, or another number (also one split by separators). Bytes
/// before `floor` are ignored.
fn number_may_start(s: &[u8], i: usize, floor: usize) -> bool {
    let joins = |p: u8| p.is_ascii_alphanumeric() || b"_.+@)".contains(&p);
    let prev_ok = match i.checked_sub(1).map(|k| s[k]) {
        None => true,
        Some(b' ' | b'-') => !(i >= floor + 2 && (s[i - 2].is_ascii_digit() || s[i - 2] == b')')),
        Some(p) => !joins(p),
    };
    prev_ok && (s[i].is_ascii_digit() || s[i] == b'+' || s[i] == b'(')
}

/// A number may end here: not followed by a letter, a digit, or a
/// separator and a digit that would continue it (a space counts as a
/// separator when `spaced`).
fn number_may_end(s: &[u8], end: usize, spaced: bool) -> bool {
    match s.get(end) {
        None => true,
        Some(c) if c.is_ascii_alphanumeric() || *c == b'_' => false,
        Some(b'.' | b'-') => !s.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(b' ') if spaced => !s.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

fn digits(s: &[u8], i: usize) -> usize {
    s.get(i..)
        .map_or(0, |t| t.iter().take_while(|c| c.is_ascii_digit()).count())
}

/// US social security number, `ddd-dd-dddd`.
fn ssn_at(s: &[u8], i: usize) -> Option<usize> {
    let a = digits(s, i);
    let b = digits(s, i + 4);
    let c = digits(s, i + 7);
    let dash = |k: usize| s.get(i + k) == Some(&b'-');
    let ok = a == 3 && dash(3) && b == 2 && dash(6) && c == 4;
    (ok && number_may_end(s, i + 11, false)).then_some(i + 11)
}

/// A group of digits and where it ends.
#[derive(Clone, Copy)]
struct Group {
    len: usize,
    end: usize,
}

/// 13-19 digits, optionally in groups (of 3 or more) split by one space or
/// dash, passing the Luhn check.
fn card_at(s: &[u8], i: usize) -> Option<usize> {
    let mut groups: Vec<Group> = Vec::new();
    let mut pos = i;
    loop {
        let n = digits(s, pos);
        if n == 0 {
            break;
        }
        groups.push(Group {
            len: n,
            end: pos + n,
        });
        pos += n;
        let total: usize = groups.iter().map(|g| g.len).sum();
        match s.get(pos) {
            Some(b' ' | b'-') if total < 19 && digits(s, pos + 1) > 0 => pos += 1,
            _ => break,
        }
    }
    let total: usize = groups.iter().map(|g| g.len).sum();
    let end = groups.last()?.end;
    let ok = (13..=19).contains(&total)
        && (groups.len() == 1 || groups.iter().all(|g| g.len >= 3))
        && number_may_end(s, end, true)
        && luhn(&s[i..end]);
    ok.then_some(end)
}

/// The Luhn checksum over the digits of `s` (other bytes are skipped).
fn luhn(s: &[u8]) -> bool {
    let mut sum = 0u32;
    for (n, c) in s.iter().rev().filter(|c| c.is_ascii_digit()).enumerate() {
        let mut d = u32::from(c - b'0');
        if n % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// 10-15 digits in groups split by one space, dash or dot, with an optional
/// leading `+` and one optional `(area)` group, e.g. `+1 415-555-0100`,
/// `(415) 555-0100`, `415.555.0100`. A bare run of digits without `+` is not
/// taken for a phone number (it is more often an id, seed or timestamp).
fn phone_at(s: &[u8], i: usize) -> Option<usize> {
    let plus = s[i] == b'+';
    let mut pos = i + usize::from(plus);
    let mut groups: Vec<Group> = Vec::new();
    let (mut paren, mut dot) = (false, false);
    loop {
        let mut sep_optional = false;
        if s.get(pos) == Some(&b'(') && !paren {
            let n = digits(s, pos + 1);
            if !(1..=4).contains(&n) || s.get(pos + 1 + n) != Some(&b')') {
                break;
            }
            paren = true;
            sep_optional = true;
            groups.push(Group {
                len: n,
                end: pos + n + 2,
            });
            pos += n + 2;
        } else {
            let n = digits(s, pos);
            if n == 0 {
                break;
            }
            groups.push(Group {
                len: n,
                end: pos + n,
            });
            pos += n;
        }
        let next = s.get(pos).copied();
        let (skip, is_dot) = match next {
            Some(b' ' | b'-') => (1, false),
            Some(b'.') => (1, true),
            _ if sep_optional => (0, false),
            _ => break,
        };
        let after = s.get(pos + skip).copied();
        if !(after.is_some_and(|c| c.is_ascii_digit()) || (after == Some(b'(') && !paren))
            || groups.len() == 6
        {
            break;
        }
        dot |= is_dot;
        pos += skip;
    }
    let total: usize = groups.iter().map(|g| g.len).sum();
    let last = *groups.last()?;
    // Dotted numbers need three groups and a 4-digit tail, which rules out
    // decimals and IPv4 addresses.
    let ok = (10..=15).contains(&total)
        && (groups.len() > 1 || plus)
        && groups[1..].iter().all(|g| g.len >= 2)
        && (!dot || (groups.len() >= 3 && last.len >= 4))
        && s[last.end - 1] != b')'
        && number_may_end(s, last.end, true);
    ok.then_some(last.end)
}
