//! The scanner's fast path (`survey_assets/dns/fastpath.py` loads it through ctypes): DNS
//! answers read by `wire.py`'s rules and judged as `chain.py` judges the common shapes of a
//! domain's MX answer. Standard library only. Inputs and outputs are flat buffers of
//! little-endian u32 lengths; a panic anywhere is caught and fails the call, not the process.

mod judge;
mod message;
mod text;

use std::collections::HashMap;
use std::panic;

use message::Name;

struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    fn u32(&mut self) -> Option<u32> {
        let bytes = self.data.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn i64(&mut self) -> Option<i64> {
        let low = self.u32()? as u64;
        let high = self.u32()? as u64;
        Some(((high << 32) | low) as i64)
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let length = self.u32()? as usize;
        let out = self.data.get(self.pos..self.pos + length)?;
        self.pos += length;
        Some(out)
    }
}

fn name_from_wire(wire: &[u8]) -> Option<Name> {
    let mut labels = Name::new();
    let mut pos = 0;
    loop {
        let n = *wire.get(pos)? as usize;
        if n == 0 {
            return if pos + 1 == wire.len() { Some(labels) } else { None };
        }
        if n > 63 {
            return None;
        }
        labels.push(wire.get(pos + 1..pos + 1 + n)?.to_vec());
        pos += 1 + n;
    }
}

fn put(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
}

/// For each (name, DS answer): 0 when the answer is not for the fast path, 1 when it holds no
/// DS, 2 when it does; then the parent zone whose keys judge it (wire form).
fn plan(data: &[u8]) -> Option<Vec<u8>> {
    let mut input = Input { data, pos: 0 };
    let count = input.u32()?;
    let mut out = Vec::new();
    for _ in 0..count {
        let name = name_from_wire(input.bytes()?)?;
        let ds = input.bytes()?;
        let q: Name = name.iter().map(|l| l.to_ascii_lowercase()).collect();
        match judge::plan(&q, ds) {
            Some((parent, has_ds)) => {
                out.push(if has_ds { 2 } else { 1 });
                put(&mut out, &message::wire_of(&parent));
            }
            None => {
                out.push(0);
                put(&mut out, b"");
            }
        }
    }
    Some(out)
}

/// The decisions: the jobs, then for each name 0 (left to Python), 1 (secure) or 2
/// (insecure, no_ds) and its text: zone, records, signatures and groups, split by U+001F.
fn judge_all(data: &[u8]) -> Option<Vec<u8>> {
    let mut input = Input { data, pos: 0 };
    let now = input.i64()?;
    let max_iterations = input.u32()?;
    let mut zones: HashMap<Name, Vec<judge::Key>> = HashMap::new();
    for _ in 0..input.u32()? {
        let zone = name_from_wire(input.bytes()?)?;
        let mut keys = Vec::new();
        for _ in 0..input.u32()? {
            keys.extend(judge::Key::from_rdata(input.bytes()?));
        }
        zones.insert(zone, keys);
    }
    let mut jobs = judge::Jobs::default();
    let mut decisions = Vec::new();
    for _ in 0..input.u32()? {
        let name = name_from_wire(input.bytes()?)?;
        let (mx, ds, dnskey) = (input.bytes()?, input.bytes()?, input.bytes()?);
        let dnskey = if dnskey.is_empty() { None } else { Some(dnskey) };
        match judge::judge(&name, mx, ds, dnskey, &zones, now, max_iterations, &mut jobs) {
            None => {
                decisions.push(0);
                put(&mut decisions, b"");
            }
            Some(d) => {
                decisions.push(if d.secure { 1 } else { 2 });
                let groups: Vec<String> = d
                    .groups
                    .iter()
                    .map(|g| {
                        g.iter()
                            .map(|c| c.iter().map(|j| j.to_string()).collect::<Vec<_>>().join("+"))
                            .collect::<Vec<_>>()
                            .join("|")
                    })
                    .collect();
                let text = [d.zone, d.records, d.signatures, groups.join(";")].join("\u{1f}");
                put(&mut decisions, text.as_bytes());
            }
        }
    }
    let mut out = jobs.count.to_le_bytes().to_vec();
    out.extend_from_slice(&jobs.out);
    out.extend_from_slice(&decisions);
    Some(out)
}

/// A message as the reader reads it, to hold it to `wire.py` in tests: 0 when it declines;
/// else 1, the header (ID, flags, rcode), the question, and the answer and authority RRsets
/// (name, owner, type, covered type, TTL, and each record's wire and canonical forms).
fn read(data: &[u8]) -> Option<Vec<u8>> {
    let m = match message::parse(data) {
        Ok(m) => m,
        Err(_) => return Some(vec![0]),
    };
    let mut out = vec![1];
    out.extend_from_slice(&m.id.to_le_bytes());
    out.extend_from_slice(&m.flags.to_le_bytes());
    out.extend_from_slice(&m.rcode.to_le_bytes());
    out.extend_from_slice(&(m.question.len() as u32).to_le_bytes());
    for (name, qtype, qclass) in &m.question {
        put(&mut out, &message::wire_of(name));
        out.extend_from_slice(&qtype.to_le_bytes());
        out.extend_from_slice(&qclass.to_le_bytes());
    }
    for section in [&m.answer, &m.authority] {
        out.extend_from_slice(&(section.len() as u32).to_le_bytes());
        for rrset in section.iter() {
            put(&mut out, &message::wire_of(&rrset.name));
            put(&mut out, &message::wire_of(&rrset.owner));
            out.extend_from_slice(&rrset.rdtype.to_le_bytes());
            out.extend_from_slice(&rrset.covers.to_le_bytes());
            out.extend_from_slice(&rrset.ttl.to_le_bytes());
            out.extend_from_slice(&(rrset.rdatas.len() as u32).to_le_bytes());
            for rd in &rrset.rdatas {
                put(&mut out, &rd.wire);
                put(&mut out, &rd.canon);
            }
        }
    }
    Some(out)
}

fn call(
    work: fn(&[u8]) -> Option<Vec<u8>>,
    input: *const u8,
    length: usize,
    out: *mut *mut u8,
    out_length: *mut usize,
) -> i32 {
    if input.is_null() || out.is_null() || out_length.is_null() {
        return -2;
    }
    // SAFETY: the caller passes a buffer of `length` bytes that outlives the call.
    let data = unsafe { std::slice::from_raw_parts(input, length) };
    match panic::catch_unwind(|| work(data)) {
        Ok(Some(result)) => {
            let boxed = result.into_boxed_slice();
            // SAFETY: out pointers checked above; the buffer is released by dnsfp_free.
            unsafe {
                *out_length = boxed.len();
                *out = Box::into_raw(boxed) as *mut u8;
            }
            0
        }
        Ok(None) => -1, // a malformed request
        Err(_) => -3,   // a fault: the caller leaves the whole batch to the Python scanner
    }
}

#[no_mangle]
pub extern "C" fn dnsfp_plan(input: *const u8, length: usize, out: *mut *mut u8, out_length: *mut usize) -> i32 {
    call(plan, input, length, out, out_length)
}

#[no_mangle]
pub extern "C" fn dnsfp_judge(input: *const u8, length: usize, out: *mut *mut u8, out_length: *mut usize) -> i32 {
    call(judge_all, input, length, out, out_length)
}

#[no_mangle]
pub extern "C" fn dnsfp_read(input: *const u8, length: usize, out: *mut *mut u8, out_length: *mut usize) -> i32 {
    call(read, input, length, out, out_length)
}

#[no_mangle]
pub extern "C" fn dnsfp_free(buffer: *mut u8, length: usize) {
    if !buffer.is_null() {
        // SAFETY: `buffer` and `length` come from a successful call above, released once.
        unsafe { drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(buffer, length))) }
    }
}
