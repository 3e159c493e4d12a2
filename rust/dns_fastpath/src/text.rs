//! Presentation text exactly as `wire.py` (and so dnspython) writes it, and the encodings and
//! hash the fast path needs (base64, base32hex, SHA-1 for NSEC3 owner names).

use crate::message::Name;

fn label_text(label: &[u8], out: &mut String) {
    for &c in label {
        if b"\"().;\\@$".contains(&c) {
            out.push('\\');
            out.push(c as char);
        } else if c > 0x20 && c < 0x7F {
            out.push(c as char);
        } else {
            out.push_str(&format!("\\{:03}", c));
        }
    }
}

/// `wire.name_text`: an absolute name's text, as dnspython's Name.to_text() writes it.
pub fn name_text(labels: &Name) -> String {
    if labels.is_empty() {
        return ".".to_string();
    }
    let mut out = String::new();
    for label in labels {
        label_text(label, &mut out);
        out.push('.');
    }
    out
}

/// `time.strftime("%Y%m%d%H%M%S", time.gmtime(when))`.
pub fn sigtime(when: u32) -> String {
    let secs = when as i64;
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        year,
        month,
        day,
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity((data.len() + 2) / 3 * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let v = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((v >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `base64.b32hexencode(data).lower()`, padding included.
pub fn base32hex_lower(data: &[u8]) -> Vec<u8> {
    const T: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = Vec::with_capacity((data.len() + 4) / 5 * 8);
    for chunk in data.chunks(5) {
        let mut b = [0u8; 5];
        b[..chunk.len()].copy_from_slice(chunk);
        let v = b.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64);
        let used = (chunk.len() * 8 + 4) / 5;
        for i in 0..8 {
            if i < used {
                out.push(T[((v >> (35 - 5 * i)) & 31) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

/// SHA-1 (FIPS 180-4): NSEC3 owner names are its hashes (RFC 5155 §5).
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, &wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// `validation.nsec3_hash`: the name's NSEC3 owner label (lower-case base32hex).
pub fn nsec3_hash(wire: &[u8], salt: &[u8], iterations: u16) -> Vec<u8> {
    let mut input = wire.to_vec();
    input.extend_from_slice(salt);
    let mut digest = sha1(&input);
    for _ in 0..iterations {
        let mut next = digest.to_vec();
        next.extend_from_slice(salt);
        digest = sha1(&next);
    }
    base32hex_lower(&digest)
}
