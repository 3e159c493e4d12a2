//! CZDS zone-file lines to RRset rows, in one pass over a block of whole lines.
//!
//! Called from `survey_assets/sources/czds_native.py` through ctypes. The caller hands a block
//! of decompressed text and buffers to fill; the reader writes the block's kept RRsets as three
//! Arrow string columns (owner, rtype, rdata) and copies out every line it does not take as
//! plain (an "odd" line), which the caller sends through the polars reader, the reference for
//! every rule. The only unsafe code turns the caller's pointers into slices; the rest is safe
//! Rust, so a hostile file can at worst make lines odd. Standard library only: CI may build it
//! with Debian's cargo and no registry.
//!
//! A line is taken as plain when it has exactly five tab-separated fields (the TTL is not
//! read), no carriage return, only ASCII in its owner and record data, class IN in any case, a
//! type mnemonic from the caller's list (or TYPEnnn), and, for the kept types, an owner inside
//! the zone made of letters, digits, `-`, `_` and `*` with labels of 1 to 63 octets, ending in
//! a dot, at most 254 characters. Owners are written in lower case. A run of lines with the
//! same owner (as written in the file) and type becomes one RRset row, its record data
//! distinct, sorted bytewise and joined by newlines.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

const SEPARATOR: u8 = b'\n'; // between the records of an RRset's rdata
const MAX_TYPES: usize = 1024; // distinct type mnemonics counted; a line with another is odd
const MAX_OWNER: usize = 254;

/// Sizes in and out: one struct so the C signature stays short.
#[repr(C)]
#[derive(Default)]
pub struct Counts {
    pub lines: u64,     // lines in the block, a last one without a newline included
    pub rows: u64,      // RRset rows written
    pub records: u64,   // records in them, after duplicates are dropped
    pub blank: u64,     // empty lines
    pub odd_lines: u64, // lines not taken, copied to `odd` each with a newline
    pub odd_bytes: u64,
    pub owner_bytes: u64,
    pub rtype_bytes: u64,
    pub rdata_bytes: u64,
    pub types_bytes: u64, // "mnemonic count\n" lines of the counted types
}

/// Bytes appended to a caller-owned buffer.
struct Text<'a> {
    data: &'a mut [u8],
    used: usize,
}

impl<'a> Text<'a> {
    fn extend(&mut self, bytes: &[u8]) -> Result<(), i32> {
        let end = self.used + bytes.len();
        self.data.get_mut(self.used..end).ok_or(-3)?.copy_from_slice(bytes);
        self.used = end;
        Ok(())
    }
}

/// An Arrow string column written into caller-owned buffers: offsets, and the text they cut.
struct Column<'a> {
    offsets: &'a mut [i32],
    text: Text<'a>,
    rows: usize,
}

impl<'a> Column<'a> {
    fn new(offsets: &'a mut [i32], data: &'a mut [u8]) -> Result<Self, i32> {
        *offsets.first_mut().ok_or(-2)? = 0;
        Ok(Column { offsets, text: Text { data, used: 0 }, rows: 0 })
    }

    fn extend(&mut self, bytes: &[u8]) -> Result<(), i32> {
        self.text.extend(bytes)
    }

    fn finish_row(&mut self) -> Result<(), i32> {
        self.rows += 1;
        let used = i32::try_from(self.text.used).map_err(|_| -4)?;
        *self.offsets.get_mut(self.rows).ok_or(-2)? = used;
        Ok(())
    }
}

// Owner bytes: 0 not plain, 1 a lower-case label byte, 2 an upper-case letter, 3 a dot, 4 a tab.
const OWNER_BYTES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'*')
        {
            1
        } else if c.is_ascii_uppercase() {
            2
        } else if c == b'.' {
            3
        } else if c == b'\t' {
            4
        } else {
            0
        };
        b += 1;
    }
    table
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The bytes of an eight-byte word equal to the pattern's, as their high bits.
fn matches(word: u64, pattern: u64) -> u64 {
    let x = word ^ pattern;
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The position of the first byte of `hay` that is `a` or `b`, eight bytes at a time. (Only
/// bytes above a real match can be flagged falsely, so the lowest flag is exact.)
fn find(hay: &[u8], a: u8, b: u8) -> Option<usize> {
    let (pa, pb) = (ONES * a as u64, ONES * b as u64);
    let mut chunks = hay.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let found = matches(word, pa) | matches(word, pb);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = chunks.remainder().iter().position(|&c| c == a || c == b);
    tail.map(|i| at + i)
}

struct Type {
    mnemonic: Vec<u8>,
    count: u64,
    kept: bool,
}

struct Reader<'a, 'b> {
    zone: &'b [u8],
    known: HashMap<&'b [u8], bool>, // mnemonic -> kept
    types: Vec<Type>,               // the types seen, in order of first sight
    last_type: usize,               // the type of the line before: runs of one type are usual
    owner: Column<'a>,
    rtype: Column<'a>,
    rdata: Column<'a>,
    odd: Text<'a>,
    counts: Counts,
    run_owner: &'b [u8], // the current RRset: owner as written, type, record data
    run_type: usize,
    run_rdata: Vec<&'b [u8]>,
}

impl<'a, 'b> Reader<'a, 'b> {
    fn line(&mut self, line: &'b [u8]) -> Result<(), i32> {
        self.counts.lines += 1;
        if line.is_empty() {
            self.counts.blank += 1;
        } else if !self.plain(line)? {
            self.odd.extend(line)?;
            self.odd.extend(b"\n")?;
            self.counts.odd_lines += 1;
        }
        Ok(())
    }

    /// Takes a plain line (true) or leaves it to the caller (false) without counting it.
    fn plain(&mut self, line: &'b [u8]) -> Result<bool, i32> {
        // The owner, checked as it is scanned for its tab.
        let (mut labels_ok, mut label, mut at) = (true, 0usize, 0usize);
        loop {
            match line.get(at).map(|&b| OWNER_BYTES[b as usize]) {
                Some(1) | Some(2) => {
                    label += 1;
                    labels_ok &= label <= 63;
                }
                Some(3) => {
                    labels_ok &= label > 0;
                    label = 0;
                }
                Some(4) => break,
                Some(_) if line[at].is_ascii() => labels_ok = false,
                _ => return Ok(false), // no tab, or a byte that may not be UTF-8
            }
            at += 1;
        }
        let owner = &line[..at];
        let rest = &line[at + 1..];
        let ttl = match find(rest, b'\t', b'\r') {
            Some(n) if rest[n] == b'\t' => n,
            _ => return Ok(false),
        };
        let rest = &rest[ttl + 1..];
        if rest.len() < 3 || !rest[..2].eq_ignore_ascii_case(b"in") || rest[2] != b'\t' {
            return Ok(false);
        }
        let rest = &rest[3..];
        let tlen = match rest.iter().take(17).position(|&b| b == b'\t') {
            Some(n) if n > 0 => n,
            _ => return Ok(false),
        };
        // A sixth field (which the CSV reader drops), a carriage return or a byte that is not
        // ASCII (which may not be UTF-8) is left to it.
        let (rtype, rdata) = (&rest[..tlen], &rest[tlen + 1..]);
        if rdata.is_empty() || !rdata.is_ascii() || find(rdata, b'\t', b'\r').is_some() {
            return Ok(false);
        }
        let position = match self.type_of(rtype) {
            Some(position) => position,
            None => return Ok(false),
        };
        let kept = self.types[position].kept;
        let same_owner = !self.run_rdata.is_empty() && self.run_owner == owner;
        if kept && !same_owner && !(labels_ok && label == 0 && self.inside(owner)) {
            return Ok(false);
        }
        self.types[position].count += 1;
        if kept {
            if !(same_owner && self.run_type == position) {
                self.flush()?;
                self.run_owner = owner;
                self.run_type = position;
            }
            self.run_rdata.push(rdata);
        }
        Ok(true)
    }

    /// The position of a type in `types`, or None when it is not a type mnemonic.
    fn type_of(&mut self, rtype: &[u8]) -> Option<usize> {
        if let Some(t) = self.types.get(self.last_type) {
            if t.mnemonic.eq_ignore_ascii_case(rtype) {
                return Some(self.last_type);
            }
        }
        if !rtype.iter().all(u8::is_ascii_alphanumeric) {
            return None;
        }
        let mut lower = rtype.to_vec();
        lower.make_ascii_lowercase();
        let position = match self.types.iter().position(|t| t.mnemonic == lower) {
            Some(position) => position,
            None => {
                let kept = match self.known.get(&lower[..]) {
                    Some(&kept) => kept,
                    None if is_type_number(&lower) => false,
                    None => return None,
                };
                if self.types.len() >= MAX_TYPES {
                    return None;
                }
                self.types.push(Type { mnemonic: lower, count: 0, kept });
                self.types.len() - 1
            }
        };
        self.last_type = position;
        Some(position)
    }

    /// A plain owner (labels already checked) ending in a dot, inside the zone, in any case.
    fn inside(&self, owner: &[u8]) -> bool {
        let (n, z) = (owner.len(), self.zone.len());
        if n < 2 || n > MAX_OWNER {
            return false;
        }
        self.zone == b"."
            || owner.eq_ignore_ascii_case(self.zone)
            || (n > z && owner[n - z - 1] == b'.' && owner[n - z..].eq_ignore_ascii_case(self.zone))
    }

    fn flush(&mut self) -> Result<(), i32> {
        if self.run_rdata.is_empty() {
            return Ok(());
        }
        let records = &mut self.run_rdata;
        if records.windows(2).any(|w| w[0] >= w[1]) {
            records.sort_unstable();
            records.dedup();
        }
        let start = self.owner.text.used;
        self.owner.extend(self.run_owner)?;
        self.owner.text.data[start..self.owner.text.used].make_ascii_lowercase();
        self.owner.finish_row()?;
        self.rtype.extend(&self.types[self.run_type].mnemonic)?;
        self.rtype.finish_row()?;
        for (i, record) in records.iter().enumerate() {
            if i > 0 {
                self.rdata.extend(&[SEPARATOR])?;
            }
            self.rdata.extend(record)?;
        }
        self.rdata.finish_row()?;
        self.counts.rows += 1;
        self.counts.records += records.len() as u64;
        records.clear();
        Ok(())
    }
}

fn is_type_number(t: &[u8]) -> bool {
    t.len() > 4 && t.starts_with(b"type") && t[4..].iter().all(u8::is_ascii_digit)
}

#[allow(clippy::too_many_arguments)]
fn read<'b>(
    block: &'b [u8],
    zone: &'b [u8],
    known: &'b [u8],
    kept: &'b [u8],
    columns: [(&mut [i32], &mut [u8]); 3],
    odd: &mut [u8],
    types_out: &mut [u8],
    counts: &mut Counts,
) -> Result<(), i32> {
    let kept: Vec<&[u8]> = kept.split(|&b| b == b'\n').collect();
    let known = known
        .split(|&b| b == b'\n')
        .filter(|t| !t.is_empty())
        .map(|t| (t, kept.contains(&t)))
        .collect();
    let [(oo, od), (to, td), (ro, rd)] = columns;
    let mut reader = Reader {
        zone,
        known,
        types: Vec::new(),
        last_type: 0,
        owner: Column::new(oo, od)?,
        rtype: Column::new(to, td)?,
        rdata: Column::new(ro, rd)?,
        odd: Text { data: odd, used: 0 },
        counts: Counts::default(),
        run_owner: &[],
        run_type: 0,
        run_rdata: Vec::with_capacity(16),
    };
    let mut start = 0;
    while start < block.len() {
        let end = match find(&block[start..], b'\n', b'\n') {
            Some(n) => start + n,
            None => block.len(),
        };
        reader.line(&block[start..end])?;
        start = end + 1;
    }
    reader.flush()?;
    let mut text = Vec::new();
    for t in reader.types.iter().filter(|t| t.count > 0) {
        text.extend_from_slice(&t.mnemonic);
        text.extend_from_slice(format!(" {}\n", t.count).as_bytes());
    }
    types_out.get_mut(..text.len()).ok_or(-6)?.copy_from_slice(&text);
    reader.counts.owner_bytes = reader.owner.text.used as u64;
    reader.counts.rtype_bytes = reader.rtype.text.used as u64;
    reader.counts.rdata_bytes = reader.rdata.text.used as u64;
    reader.counts.types_bytes = text.len() as u64;
    reader.counts.odd_bytes = reader.odd.used as u64;
    *counts = reader.counts;
    Ok(())
}

/// # Safety
/// Every pointer must be valid for its length (`*_cap` counts elements): `block`, `zone`,
/// `known` and `kept` readable; the `*_offsets` arrays (`rows_cap + 1` each), the data buffers
/// (`owner_data` and `rdata_data` `data_cap` each, `rtype_data` `rtype_cap`), `odd` (`odd_cap`) and `types_out`
/// (`types_cap`) writable; `counts` one writable `Counts`. Returns 0, or a negative code when a
/// buffer was too small or the reader failed; nothing the caller gave is read afterwards.
#[no_mangle]
pub unsafe extern "C" fn czds_read_block(
    block: *const u8,
    block_len: usize,
    zone: *const u8,
    zone_len: usize,
    known: *const u8,
    known_len: usize,
    kept: *const u8,
    kept_len: usize,
    owner_offsets: *mut i32,
    owner_data: *mut u8,
    rtype_offsets: *mut i32,
    rtype_data: *mut u8,
    rdata_offsets: *mut i32,
    rdata_data: *mut u8,
    rows_cap: usize,
    data_cap: usize,
    rtype_cap: usize,
    types_cap: usize,
    odd: *mut u8,
    odd_cap: usize,
    types_out: *mut u8,
    counts: *mut Counts,
) -> i32 {
    use std::slice::{from_raw_parts, from_raw_parts_mut};
    let block = from_raw_parts(block, block_len);
    let zone = from_raw_parts(zone, zone_len);
    let known = from_raw_parts(known, known_len);
    let kept = from_raw_parts(kept, kept_len);
    let columns = [
        (from_raw_parts_mut(owner_offsets, rows_cap + 1), from_raw_parts_mut(owner_data, data_cap)),
        (from_raw_parts_mut(rtype_offsets, rows_cap + 1), from_raw_parts_mut(rtype_data, rtype_cap)),
        (from_raw_parts_mut(rdata_offsets, rows_cap + 1), from_raw_parts_mut(rdata_data, data_cap)),
    ];
    let odd = from_raw_parts_mut(odd, odd_cap);
    let types_out = from_raw_parts_mut(types_out, types_cap);
    let counts = &mut *counts;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        read(block, zone, known, kept, columns, odd, types_out, counts)
    }));
    match outcome {
        Ok(Ok(())) => 0,
        Ok(Err(code)) => code,
        Err(_) => -1,
    }
}
