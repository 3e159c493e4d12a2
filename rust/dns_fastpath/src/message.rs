//! A port of `survey_assets/dns/wire.py`'s `parse`: the same rules, the same declines. What
//! it declines, the fast path leaves to the Python scanner, so this reader may only ever be
//! stricter than `wire.py`, never more lenient.

pub type Name = Vec<Vec<u8>>; // labels without the root label

pub const A: u16 = 1;
pub const NS: u16 = 2;
pub const CNAME: u16 = 5;
pub const SOA: u16 = 6;
pub const PTR: u16 = 12;
pub const MX: u16 = 15;
pub const AAAA: u16 = 28;
pub const OPT: u16 = 41;
pub const DS: u16 = 43;
pub const RRSIG: u16 = 46;
pub const NSEC: u16 = 47;
pub const DNSKEY: u16 = 48;
pub const NSEC3: u16 = 50;
pub const TLSA: u16 = 52;
const MAX_HOPS: u32 = 16;

pub struct Decline;
type R<T> = Result<T, Decline>;

pub enum Fields {
    Plain,
    Rrsig {
        covered: u16,
        algorithm: u8,
        labels: u8,
        original_ttl: u32,
        expiration: u32,
        inception: u32,
        key_tag: u16,
        signer: Name,
        signer_labels: Name,
        signature: Vec<u8>,
    },
    Nsec {
        next: Name,
        bitmap: Vec<u8>,
    },
    Nsec3 {
        flags: u8,
        iterations: u16,
        salt: Vec<u8>,
        next: Vec<u8>,
        bitmap: Vec<u8>,
    },
    Dnskey, // its fields are read by `judge::Key`
    Ds {
        key_tag: u16,
        algorithm: u8,
        digest_type: u8,
        digest: Vec<u8>,
    },
}

pub struct Rdata {
    pub wire: Vec<u8>,
    pub canon: Vec<u8>,
    pub fields: Fields,
}

pub struct RRset {
    pub name: Name,
    pub owner: Name,
    pub rdtype: u16,
    pub covers: u16,
    pub ttl: u32,
    pub rdatas: Vec<Rdata>,
}

pub struct Message {
    pub id: u16,
    pub flags: u16,
    pub rcode: u32,
    pub question: Vec<(Name, u16, u16)>,
    pub answer: Vec<RRset>,
    pub authority: Vec<RRset>,
}

impl Message {
    pub fn find<'a>(section: &'a [RRset], name: &Name, rdtype: u16, covers: u16) -> Option<&'a RRset> {
        section.iter().find(|r| r.rdtype == rdtype && r.covers == covers && &r.name == name)
    }
}

fn lower(name: &Name) -> Name {
    name.iter().map(|l| l.to_ascii_lowercase()).collect()
}

pub fn wire_of(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.iter().map(|l| l.len() + 1).sum::<usize>() + 1);
    for label in name {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

fn byte(w: &[u8], pos: usize) -> R<u8> {
    w.get(pos).copied().ok_or(Decline)
}

fn u16_at(w: &[u8], pos: usize) -> R<u16> {
    Ok(((byte(w, pos)? as u16) << 8) | byte(w, pos + 1)? as u16)
}

fn u32_at(w: &[u8], pos: usize) -> R<u32> {
    Ok(((u16_at(w, pos)? as u32) << 16) | u16_at(w, pos + 2)? as u32)
}

/// Labels as sent, and where the name ends in the stream (`wire._name`).
fn read_name(w: &[u8], mut pos: usize, end: usize, decompress: bool) -> R<(Name, usize)> {
    let mut labels = Vec::new();
    let mut total = 1usize;
    let mut after: Option<usize> = None;
    let mut start = pos;
    let mut limit = end;
    let mut hops = 0;
    loop {
        if pos >= limit {
            return Err(Decline);
        }
        let count = byte(w, pos)? as usize;
        pos += 1;
        if count == 0 {
            break;
        }
        if count < 64 {
            if pos + count > limit || pos + count > w.len() {
                return Err(Decline);
            }
            labels.push(w[pos..pos + count].to_vec());
            pos += count;
            total += count + 1;
        } else if count >= 192 {
            if !decompress || pos >= limit {
                return Err(Decline);
            }
            let target = ((count & 0x3F) << 8) | byte(w, pos)? as usize;
            pos += 1;
            if target >= start {
                return Err(Decline);
            }
            hops += 1;
            if hops > MAX_HOPS {
                return Err(Decline);
            }
            if after.is_none() {
                after = Some(pos);
            }
            limit = start;
            start = target;
            pos = target;
        } else {
            return Err(Decline);
        }
    }
    if total > 255 {
        return Err(Decline);
    }
    Ok((labels, after.unwrap_or(pos)))
}

fn names_wire(w: &[u8], start: usize, after: usize, labels: &Name) -> Vec<u8> {
    let length: usize = labels.iter().map(|l| l.len()).sum::<usize>() + labels.len() + 1;
    if after - start == length {
        w[start..after].to_vec()
    } else {
        wire_of(labels)
    }
}

fn check_bitmap(w: &[u8], mut pos: usize, end: usize) -> R<()> {
    let mut last: i32 = -1;
    while pos < end {
        if pos + 2 > end {
            return Err(Decline);
        }
        let window = w[pos] as i32;
        let length = w[pos + 1] as usize;
        if window <= last || !(length > 0 && length <= 32) || pos + 2 + length > end {
            return Err(Decline);
        }
        if w[pos + 1 + length] == 0 {
            return Err(Decline);
        }
        last = window;
        pos += 2 + length;
    }
    Ok(())
}

pub fn types_of(bitmap: &[u8]) -> Vec<u16> {
    let mut types = Vec::new();
    let mut pos = 0;
    while pos + 1 < bitmap.len() {
        let window = bitmap[pos] as u16;
        let length = bitmap[pos + 1] as usize;
        let stop = (pos + 2 + length).min(bitmap.len());
        for (i, &b) in bitmap[pos + 2..stop].iter().enumerate() {
            for bit in 0..8 {
                if b & (0x80 >> bit) != 0 {
                    types.push(window * 256 + (i as u16) * 8 + bit);
                }
            }
        }
        pos += 2 + length;
    }
    types
}

fn plain(w: &[u8], pos: usize, end: usize) -> Rdata {
    let data = w[pos..end].to_vec();
    Rdata { canon: data.clone(), wire: data, fields: Fields::Plain }
}

/// One record's data between pos and end (`wire._read_rdata`).
fn read_rdata(rdtype: u16, w: &[u8], pos: usize, end: usize) -> R<Rdata> {
    let size = end - pos;
    match rdtype {
        RRSIG => {
            if size < 18 {
                return Err(Decline);
            }
            let (signer_labels, after) = read_name(w, pos + 18, end, false)?;
            let mut canon = w[pos..pos + 18].to_vec();
            canon.extend(w[pos + 18..after].iter().map(|b| b.to_ascii_lowercase()));
            canon.extend_from_slice(&w[after..end]);
            Ok(Rdata {
                wire: w[pos..end].to_vec(),
                canon,
                fields: Fields::Rrsig {
                    covered: u16_at(w, pos)?,
                    algorithm: w[pos + 2],
                    labels: w[pos + 3],
                    original_ttl: u32_at(w, pos + 4)?,
                    expiration: u32_at(w, pos + 8)?,
                    inception: u32_at(w, pos + 12)?,
                    key_tag: u16_at(w, pos + 16)?,
                    signer: lower(&signer_labels),
                    signer_labels,
                    signature: w[after..end].to_vec(),
                },
            })
        }
        NSEC => {
            let (next, after) = read_name(w, pos, end, false)?;
            check_bitmap(w, after, end)?;
            let data = w[pos..end].to_vec();
            Ok(Rdata {
                canon: data.clone(),
                wire: data,
                fields: Fields::Nsec { next: lower(&next), bitmap: w[after..end].to_vec() },
            })
        }
        NSEC3 => {
            if size < 5 {
                return Err(Decline);
            }
            let salt_end = pos + 5 + w[pos + 4] as usize;
            if salt_end + 1 > end {
                return Err(Decline);
            }
            let next_end = salt_end + 1 + w[salt_end] as usize;
            if next_end == salt_end + 1 || next_end > end {
                return Err(Decline);
            }
            check_bitmap(w, next_end, end)?;
            let data = w[pos..end].to_vec();
            Ok(Rdata {
                canon: data.clone(),
                wire: data,
                fields: Fields::Nsec3 {
                    flags: w[pos + 1],
                    iterations: u16_at(w, pos + 2)?,
                    salt: w[pos + 5..salt_end].to_vec(),
                    next: w[salt_end + 1..next_end].to_vec(),
                    bitmap: w[next_end..end].to_vec(),
                },
            })
        }
        DNSKEY => {
            if size < 4 {
                return Err(Decline);
            }
            let data = w[pos..end].to_vec();
            Ok(Rdata {
                canon: data.clone(),
                wire: data,
                fields: Fields::Dnskey,
            })
        }
        DS => {
            if size < 4 {
                return Err(Decline);
            }
            let digest_type = w[pos + 3];
            let expected = match digest_type {
                1 => Some(20),
                2 | 3 => Some(32),
                4 => Some(48),
                _ => None,
            };
            if digest_type == 0 || expected.map_or(false, |e| size - 4 != e) {
                return Err(Decline);
            }
            let data = w[pos..end].to_vec();
            Ok(Rdata {
                canon: data.clone(),
                wire: data,
                fields: Fields::Ds {
                    key_tag: u16_at(w, pos)?,
                    algorithm: w[pos + 2],
                    digest_type,
                    digest: w[pos + 4..end].to_vec(),
                },
            })
        }
        A | AAAA => {
            if size != if rdtype == A { 4 } else { 16 } {
                return Err(Decline);
            }
            Ok(plain(w, pos, end))
        }
        MX => {
            if size < 2 {
                return Err(Decline);
            }
            let (target, after) = read_name(w, pos + 2, end, true)?;
            if after != end {
                return Err(Decline);
            }
            let mut wire = w[pos..pos + 2].to_vec();
            wire.extend(names_wire(w, pos + 2, after, &target));
            let mut canon = wire.clone();
            canon[2..].make_ascii_lowercase();
            Ok(Rdata { wire, canon, fields: Fields::Plain })
        }
        NS | CNAME | PTR => {
            let (target, after) = read_name(w, pos, end, true)?;
            if after != end {
                return Err(Decline);
            }
            let wire = names_wire(w, pos, after, &target);
            let canon = wire.to_ascii_lowercase();
            Ok(Rdata { wire, canon, fields: Fields::Plain })
        }
        SOA => {
            let (mname, middle) = read_name(w, pos, end, true)?;
            let (rname, after) = read_name(w, middle, end, true)?;
            if end - after != 20 {
                return Err(Decline);
            }
            let mut names = names_wire(w, pos, middle, &mname);
            names.extend(names_wire(w, middle, after, &rname));
            let mut canon = names.to_ascii_lowercase();
            canon.extend_from_slice(&w[after..end]);
            names.extend_from_slice(&w[after..end]);
            Ok(Rdata { wire: names, canon, fields: Fields::Plain })
        }
        TLSA => {
            if size < 3 {
                return Err(Decline);
            }
            Ok(plain(w, pos, end))
        }
        _ => Err(Decline),
    }
}

fn singleton(rdtype: u16) -> bool {
    matches!(rdtype, SOA | CNAME | NSEC | 30 | 39)
}

/// The message as `wire.parse` reads it, or Decline where `wire.parse` returns None.
pub fn parse(w: &[u8]) -> R<Message> {
    let n = w.len();
    if n < 12 {
        return Err(Decline);
    }
    let flags = u16_at(w, 2)?;
    if (flags >> 11) & 0xF != 0 {
        return Err(Decline);
    }
    let counts = [u16_at(w, 4)?, u16_at(w, 6)?, u16_at(w, 8)?, u16_at(w, 10)?];
    let mut m = Message {
        id: u16_at(w, 0)?,
        flags,
        rcode: (flags & 0xF) as u32,
        question: Vec::new(),
        answer: Vec::new(),
        authority: Vec::new(),
    };
    let mut pos = 12;
    for _ in 0..counts[0] {
        let (labels, after) = read_name(w, pos, n, true)?;
        pos = after;
        if pos + 4 > n {
            return Err(Decline);
        }
        m.question.push((lower(&labels), u16_at(w, pos)?, u16_at(w, pos + 2)?));
        pos += 4;
    }
    let mut opt_seen = false;
    for section in 0..3 {
        let mut rrsets: Vec<RRset> = Vec::new();
        for _ in 0..counts[section + 1] {
            let (owner, after) = read_name(w, pos, n, true)?;
            pos = after;
            if pos + 10 > n {
                return Err(Decline);
            }
            let rdtype = u16_at(w, pos)?;
            let rdclass = u16_at(w, pos + 2)?;
            let mut ttl = u32_at(w, pos + 4)?;
            let rdlen = u16_at(w, pos + 8)? as usize;
            pos += 10;
            let end = pos + rdlen;
            if end > n {
                return Err(Decline);
            }
            if rdtype == OPT {
                if section != 2 || opt_seen || !owner.is_empty() || rdlen != 0 {
                    return Err(Decline);
                }
                opt_seen = true;
                m.rcode |= (ttl >> 20) & 0xFF0;
                pos = end;
                continue;
            }
            if rdclass != 1 {
                return Err(Decline);
            }
            let rd = read_rdata(rdtype, w, pos, end)?;
            pos = end;
            if ttl > 0x7FFF_FFFF {
                ttl = 0;
            }
            let name = lower(&owner);
            let covers = match rd.fields {
                Fields::Rrsig { covered, .. } => covered,
                _ => 0,
            };
            let found = rrsets
                .iter_mut()
                .position(|r| r.rdtype == rdtype && r.covers == covers && r.name == name);
            let index = match found {
                Some(i) => i,
                None => {
                    rrsets.push(RRset { name, owner, rdtype, covers, ttl, rdatas: Vec::new() });
                    rrsets.len() - 1
                }
            };
            let rrset = &mut rrsets[index];
            if ttl < rrset.ttl {
                rrset.ttl = ttl;
            }
            if singleton(rdtype) && !rrset.rdatas.is_empty() {
                rrset.rdatas.clear();
            }
            if !rrset.rdatas.iter().any(|r| r.canon == rd.canon) {
                rrset.rdatas.push(rd);
            }
        }
        match section {
            0 => m.answer = rrsets,
            1 => m.authority = rrsets,
            _ => {} // read by the rules, and not needed
        }
    }
    if pos != n {
        return Err(Decline);
    }
    Ok(m)
}

/// `wire.is_response` for a QUERY with one question (the ID was matched by the exchange).
pub fn is_response(m: &Message, question: &(Name, u16, u16)) -> bool {
    if m.flags & 0x8000 == 0 || (m.flags >> 11) & 0xF != 0 {
        return false;
    }
    match m.question.first() {
        None => matches!(m.rcode, 1 | 2 | 4 | 5),
        Some(first) => first == question && m.question.iter().all(|q| q == question),
    }
}
