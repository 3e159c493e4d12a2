//! The common shapes of a domain's MX answer judged as `survey_assets/dns/chain.py` judges
//! them: a signed zone whose DS, DNSKEY and MX signatures hold, and an unsigned delegation
//! whose parent proves it has no DS. Each step mirrors a Python function (named in its
//! comment) on the path that ends in `secure`, or in `insecure` with `no_ds`; anything else
//! (every failure, every reason code, every rarer shape) returns None and the Python
//! scanner judges the domain from scratch. Signatures and DS digests are not checked here:
//! they become jobs that Python checks with `cryptography` and `hashlib`, and a decision
//! stands only if its groups of jobs hold (each group: any one of its conjunctions).

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::message::{self as M, Fields, Message, Name, RRset, Rdata};
use crate::text;

const ZONE_KEY: u16 = 0x0100;
const REVOKE: u16 = 0x0080;

fn supported_algorithm(algorithm: u8) -> bool {
    matches!(algorithm, 8 | 10 | 13 | 14 | 15 | 16)
}

pub struct Key {
    pub wire: Vec<u8>,
    pub flags: u16,
    pub protocol: u8,
    pub algorithm: u8,
    pub material: Vec<u8>,
    tag: u16,
}

impl Key {
    pub fn from_rdata(wire: &[u8]) -> Option<Key> {
        if wire.len() < 4 {
            return None;
        }
        Some(Key {
            wire: wire.to_vec(),
            flags: ((wire[0] as u16) << 8) | wire[1] as u16,
            protocol: wire[2],
            algorithm: wire[3],
            material: wire[4..].to_vec(),
            tag: key_tag(wire[3], wire),
        })
    }

    fn of(rd: &Rdata) -> Option<Key> {
        match rd.fields {
            Fields::Dnskey => Key::from_rdata(&rd.wire),
            _ => None,
        }
    }
}

/// `wire.key_tag_of` (RFC 4034 Appendix B).
fn key_tag(algorithm: u8, w: &[u8]) -> u16 {
    if algorithm == 1 {
        return if w.len() >= 3 { ((w[w.len() - 3] as u16) << 8) + w[w.len() - 2] as u16 } else { 0 };
    }
    let mut total: u64 = 0;
    for (i, &b) in w.iter().enumerate() {
        total += if i % 2 == 0 { (b as u64) << 8 } else { b as u64 };
    }
    total += (total >> 16) & 0xFFFF;
    (total & 0xFFFF) as u16
}

/// Checks left to Python, each listed once however many domains need it.
#[derive(Default)]
pub struct Jobs {
    pub out: Vec<u8>,
    pub count: u32,
    index: HashMap<Vec<u8>, u32>,
}

impl Jobs {
    fn add(&mut self, kind: u8, code: u8, parts: [&[u8]; 3]) -> u32 {
        let mut encoded = vec![kind, code];
        for part in parts {
            encoded.extend_from_slice(&(part.len() as u32).to_le_bytes());
            encoded.extend_from_slice(part);
        }
        if let Some(&id) = self.index.get(&encoded) {
            return id;
        }
        let id = self.count;
        self.count += 1;
        self.out.extend_from_slice(&encoded);
        self.index.insert(encoded, id);
        id
    }

    /// A signature by `key` over `data` (`validation._verify`).
    fn signature(&mut self, key: &Key, data: &[u8], signature: &[u8]) -> u32 {
        self.add(1, key.algorithm, [&key.material, data, signature])
    }

    /// A DS digest of `data` (owner and key) equal to `digest` (`validation._ds_matches`).
    fn digest(&mut self, digest_type: u8, data: &[u8], digest: &[u8]) -> u32 {
        self.add(2, digest_type, [data, digest, b""])
    }
}

pub type Group = Vec<Vec<u32>>; // holds when any of its conjunctions holds

pub struct Decision {
    pub secure: bool,
    pub zone: String,
    pub records: String,
    pub signatures: String,
    pub groups: Vec<Group>,
}

fn is_sub(name: &Name, ancestor: &Name) -> bool {
    name.len() >= ancestor.len() && name[name.len() - ancestor.len()..] == ancestor[..]
}

fn parsed(wire: &[u8], q: &Name, qtype: u16) -> Option<Message> {
    let m = M::parse(wire).ok()?;
    // TC, other rcodes and other questions: the Python client's retries, TCP and reasons.
    if !M::is_response(&m, &(q.clone(), qtype, 1)) || m.flags & 0x0200 != 0 || m.rcode != 0 {
        return None;
    }
    Some(m)
}

fn first_sig(sigs: &RRset) -> Option<(&Name, &Name)> {
    match &sigs.rdatas.first()?.fields {
        Fields::Rrsig { signer, signer_labels, .. } => Some((signer, signer_labels)),
        _ => None,
    }
}

/// The parent zone `_fetch_keys` asks keys of for a DS answer, and whether it holds a DS.
pub fn ds_parent(q: &Name, m: &Message) -> Option<(Name, bool)> {
    if q.is_empty() {
        return None;
    }
    if Message::find(&m.answer, q, M::DS, 0).is_some() {
        let mut parent = match Message::find(&m.answer, q, M::RRSIG, M::DS).and_then(first_sig) {
            Some((signer, _)) => signer.clone(),
            None => q[1..].to_vec(),
        };
        if !is_sub(q, &parent) || &parent == q {
            parent = q[1..].to_vec();
        }
        return Some((parent, true));
    }
    let parent = match m.authority.iter().find(|r| r.rdtype == M::SOA) {
        Some(soa) => soa.name.clone(),
        None => q[1..].to_vec(),
    };
    Some((parent, false))
}

pub fn plan(q: &Name, ds: &[u8]) -> Option<(Name, bool)> {
    ds_parent(q, &parsed(ds, q, M::DS)?)
}

/// `validation.signed_data`.
fn signed_data(rrset: &RRset, sig: &Rdata) -> Option<Vec<u8>> {
    let (labels, original_ttl, signer) = match &sig.fields {
        Fields::Rrsig { labels, original_ttl, signer, .. } => (*labels as usize, *original_ttl, signer),
        _ => return None,
    };
    let count = rrset.name.len();
    if count > 0 && rrset.name[0] == b"*" && labels + 1 != count {
        return None;
    }
    if count < labels {
        return None;
    }
    let name: Name = if labels < count {
        let mut n = vec![b"*".to_vec()];
        n.extend_from_slice(&rrset.name[count - labels..]);
        n
    } else {
        rrset.name.clone()
    };
    let mut head = M::wire_of(&name);
    head.extend_from_slice(&rrset.rdtype.to_be_bytes());
    head.extend_from_slice(&1u16.to_be_bytes());
    head.extend_from_slice(&original_ttl.to_be_bytes());
    let mut records: Vec<&Vec<u8>> = rrset.rdatas.iter().map(|r| &r.canon).collect();
    records.sort();
    let mut data = sig.canon[..18].to_vec();
    data.extend(M::wire_of(signer));
    for c in records {
        data.extend_from_slice(&head);
        data.extend_from_slice(&(c.len() as u16).to_be_bytes());
        data.extend_from_slice(c);
    }
    Some(data)
}

/// `validation.check_rrsigs` on its way to `secure`: every (signature, key) pair that passes
/// the checks before the cryptography, each with the jobs its key needs (a DS digest).
fn rrsig_group(
    rrset: &RRset,
    sigs: Option<&RRset>,
    keys: &[(&Key, Option<u32>)],
    zone: &Name,
    now: i64,
    jobs: &mut Jobs,
) -> Option<Group> {
    let mut group = Group::new();
    for sig in &sigs?.rdatas {
        let (covered, algorithm, key_tag, expiration, inception, signer, signature) = match &sig.fields {
            Fields::Rrsig { covered, algorithm, key_tag, expiration, inception, signer, signature, .. } => {
                (*covered, *algorithm, *key_tag, *expiration, *inception, signer, signature)
            }
            _ => continue,
        };
        if covered != rrset.rdtype || signer != zone || !is_sub(&rrset.name, signer) {
            continue;
        }
        if !supported_algorithm(algorithm) {
            continue;
        }
        let candidates: Vec<&(&Key, Option<u32>)> =
            keys.iter().filter(|(k, _)| k.algorithm == algorithm && k.tag == key_tag).collect();
        if candidates.is_empty() || now > expiration as i64 || now < inception as i64 {
            continue;
        }
        if covered == M::DNSKEY && signer != &rrset.name {
            continue;
        }
        let data = match signed_data(rrset, sig) {
            Some(data) => data,
            None => continue,
        };
        for (key, needs) in candidates {
            let usable = key.flags & ZONE_KEY != 0
                && key.protocol == 3
                && (key.flags & REVOKE == 0 || covered == M::DNSKEY);
            if usable {
                let mut conjunction: Vec<u32> = needs.iter().copied().collect();
                conjunction.push(jobs.signature(key, &data, signature));
                group.push(conjunction);
            }
        }
    }
    if group.is_empty() {
        None
    } else {
        Some(group)
    }
}

fn in_span(owner: &[u8], following: &[u8], key: &[u8]) -> bool {
    if owner < following {
        owner < key && key < following
    } else {
        key > owner || key < following
    }
}

fn canonical_cmp(a: &Name, b: &Name) -> Ordering {
    a.iter().rev().cmp(b.iter().rev())
}

/// `validation._covers`.
fn covers(owner: &Name, next: &Name, name: &Name) -> bool {
    if canonical_cmp(owner, next) == Ordering::Less {
        canonical_cmp(owner, name) == Ordering::Less && canonical_cmp(name, next) == Ordering::Less
    } else {
        canonical_cmp(name, owner) == Ordering::Greater || canonical_cmp(name, next) == Ordering::Less
    }
}

fn types(rd: &Rdata) -> Vec<u16> {
    match &rd.fields {
        Fields::Nsec { bitmap, .. } | Fields::Nsec3 { bitmap, .. } => M::types_of(bitmap),
        _ => Vec::new(),
    }
}

fn delegation(types: &[u16]) -> Option<bool> {
    if types.contains(&M::DS) || types.contains(&M::CNAME) {
        return None; // bogus
    }
    Some(types.contains(&M::NS) && !types.contains(&M::SOA))
}

/// `validation._check_nsec3` for a DS question: Some(cut) where it ends secure or insecure
/// with `no_ds`.
fn nsec3_no_ds(q: &Name, nsec3s: &[&RRset], zone: &Name) -> Option<bool> {
    let (salt, iterations) = match &nsec3s[0].rdatas.first()?.fields {
        Fields::Nsec3 { salt, iterations, .. } => (salt.clone(), *iterations),
        _ => return None,
    };
    let mut spans = Vec::new();
    for rrset in nsec3s {
        let rd = rrset.rdatas.first()?;
        let (next, flags) = match &rd.fields {
            Fields::Nsec3 { next, flags, .. } => (text::base32hex_lower(next), *flags),
            _ => return None,
        };
        let owner = rrset.name.first().cloned().unwrap_or_default();
        spans.push((owner, next, flags, rd));
    }
    let mut hashes: HashMap<Name, Vec<u8>> = HashMap::new();
    let mut digest = |name: &Name| -> Vec<u8> {
        hashes
            .entry(name.clone())
            .or_insert_with(|| text::nsec3_hash(&M::wire_of(name), &salt, iterations))
            .clone()
    };
    let exact = digest(q);
    if let Some(span) = spans.iter().find(|s| s.0 == exact) {
        return delegation(&types(span.3));
    }
    let mut encloser: Name = if q != zone { q[1..].to_vec() } else { zone.clone() };
    loop {
        let h = digest(&encloser);
        let matched = spans.iter().any(|s| s.0 == h);
        if matched {
            break;
        }
        if &encloser == zone || encloser.is_empty() {
            return None;
        }
        encloser = encloser[1..].to_vec();
    }
    let next_closer: Name =
        if q.len() > encloser.len() { q[q.len() - encloser.len() - 1..].to_vec() } else { q.clone() };
    let h = digest(&next_closer);
    let span = spans.iter().find(|s| in_span(&s.0, &s.1, &h))?;
    if span.2 & 1 != 0 {
        return Some(&next_closer == q && &encloser == zone);
    }
    None
}

/// `validation._check_nsec` for a DS question (not NXDOMAIN).
fn nsec_no_ds(q: &Name, nsecs: &[&RRset]) -> Option<bool> {
    for rrset in nsecs {
        let rd = rrset.rdatas.first()?;
        if &rrset.name == q {
            return delegation(&types(rd));
        }
        if let Fields::Nsec { next, .. } = &rd.fields {
            if covers(&rrset.name, next, q) && is_sub(next, q) {
                return Some(false);
            }
        }
    }
    None
}

/// `chain._fetch_keys` for a DS answer without a DS: Some(cut) when `check_denial` proves no
/// DS (or an opt-out span over the name), with the groups its signatures need.
fn denial(
    q: &Name,
    m: &Message,
    parent: &Name,
    keys: &[(&Key, Option<u32>)],
    now: i64,
    max_iterations: u32,
    jobs: &mut Jobs,
    groups: &mut Vec<Group>,
) -> Option<bool> {
    let proofs: Vec<&RRset> =
        m.authority.iter().filter(|r| r.rdtype == M::NSEC || r.rdtype == M::NSEC3).collect();
    if proofs.is_empty() {
        return None;
    }
    for proof in &proofs {
        let sigs = Message::find(&m.authority, &proof.name, M::RRSIG, proof.rdtype);
        groups.push(rrsig_group(proof, sigs, keys, parent, now, jobs)?);
    }
    let nsec3s: Vec<&RRset> = proofs.iter().copied().filter(|r| r.rdtype == M::NSEC3).collect();
    if !nsec3s.is_empty() {
        for rrset in &nsec3s {
            for rd in &rrset.rdatas {
                if let Fields::Nsec3 { iterations, .. } = rd.fields {
                    if iterations as u32 > max_iterations {
                        return None;
                    }
                }
            }
        }
        return nsec3_no_ds(q, &nsec3s, parent);
    }
    let nsecs: Vec<&RRset> = proofs.iter().copied().filter(|r| r.rdtype == M::NSEC).collect();
    nsec_no_ds(q, &nsecs)
}

/// `chain._fetch_keys` and `validation.check_dnskeys` for a zone whose parent holds its DS.
fn signed_zone(
    q: &Name,
    ds: &Message,
    dnskey: Option<&[u8]>,
    parent: &Name,
    parent_keys: &[(&Key, Option<u32>)],
    now: i64,
    jobs: &mut Jobs,
    groups: &mut Vec<Group>,
) -> Option<Vec<Key>> {
    let ds_rrset = Message::find(&ds.answer, q, M::DS, 0)?;
    let ds_sigs = Message::find(&ds.answer, q, M::RRSIG, M::DS);
    groups.push(rrsig_group(ds_rrset, ds_sigs, parent_keys, parent, now, jobs)?);
    let km = parsed(dnskey?, q, M::DNSKEY)?;
    let dnskeys = Message::find(&km.answer, q, M::DNSKEY, 0)?;
    let keys: Vec<Key> = dnskeys.rdatas.iter().filter_map(Key::of).collect();
    let owner = M::wire_of(q);
    let mut matched: Vec<(&Key, Option<u32>)> = Vec::new();
    let mut usable = false;
    for rd in &ds_rrset.rdatas {
        let (key_tag, algorithm, digest_type, digest) = match &rd.fields {
            Fields::Ds { key_tag, algorithm, digest_type, digest } => (*key_tag, *algorithm, *digest_type, digest),
            _ => return None,
        };
        if !supported_algorithm(algorithm) || !matches!(digest_type, 1 | 2 | 4) {
            continue;
        }
        usable = true;
        for key in &keys {
            if key.algorithm == algorithm && key.flags & ZONE_KEY != 0 && key.tag == key_tag {
                let mut data = owner.clone();
                data.extend_from_slice(&key.wire);
                matched.push((key, Some(jobs.digest(digest_type, &data, digest))));
            }
        }
    }
    if !usable || matched.is_empty() {
        return None;
    }
    let sigs = Message::find(&km.answer, q, M::RRSIG, M::DNSKEY);
    groups.push(rrsig_group(dnskeys, sigs, &matched, q, now, jobs)?);
    Some(keys.into_iter().filter(|k| k.flags & ZONE_KEY != 0 && k.flags & REVOKE == 0).collect())
}

fn type_text(rdtype: u16) -> Option<&'static str> {
    match rdtype {
        M::MX => Some("MX"),
        M::RRSIG => Some("RRSIG"),
        _ => None,
    }
}

/// `wire.RRset.to_text` for an MX RRset or the RRSIGs over one.
fn rrset_text(rrset: &RRset) -> Option<String> {
    let prefix = format!("{} {} IN {} ", text::name_text(&rrset.owner), rrset.ttl, type_text(rrset.rdtype)?);
    let mut lines = Vec::new();
    for rd in &rrset.rdatas {
        let data = match &rd.fields {
            Fields::Rrsig { covered, algorithm, labels, original_ttl, expiration, inception, key_tag, signer_labels, signature, .. } => {
                let encoded = text::base64(signature);
                let chunks: Vec<&str> =
                    encoded.as_bytes().chunks(32).map(|c| std::str::from_utf8(c).unwrap_or("")).collect();
                format!(
                    "{} {} {} {} {} {} {} {} {}",
                    type_text(*covered).filter(|_| *covered == M::MX)?,
                    algorithm,
                    labels,
                    original_ttl,
                    text::sigtime(*expiration),
                    text::sigtime(*inception),
                    key_tag,
                    text::name_text(signer_labels),
                    chunks.join(" ")
                )
            }
            Fields::Plain if rrset.rdtype == M::MX => {
                let preference = ((rd.wire[0] as u16) << 8) | rd.wire[1] as u16;
                let mut exchange = Name::new();
                let mut pos = 2;
                while pos < rd.wire.len() && rd.wire[pos] != 0 {
                    let n = rd.wire[pos] as usize;
                    exchange.push(rd.wire.get(pos + 1..pos + 1 + n)?.to_vec());
                    pos += 1 + n;
                }
                format!("{} {}", preference, text::name_text(&exchange))
            }
            _ => return None,
        };
        lines.push(prefix.clone() + &data);
    }
    Some(lines.join("\n"))
}

/// `chain.validate` for (name, MX), where it ends secure or insecure with `no_ds`.
pub fn judge(
    q_sent: &Name,
    mx: &[u8],
    ds: &[u8],
    dnskey: Option<&[u8]>,
    zones: &HashMap<Name, Vec<Key>>,
    now: i64,
    max_iterations: u32,
    jobs: &mut Jobs,
) -> Option<Decision> {
    let q: Name = q_sent.iter().map(|l| l.to_ascii_lowercase()).collect();
    let mm = parsed(mx, &q, M::MX)?;
    let mx_rrset = Message::find(&mm.answer, &q, M::MX, 0)?;
    let mx_sigs = Message::find(&mm.answer, &q, M::RRSIG, M::MX);
    let dm = parsed(ds, &q, M::DS)?;
    let (parent, has_ds) = ds_parent(&q, &dm)?;
    let parent_keys: Vec<(&Key, Option<u32>)> = zones.get(&parent)?.iter().map(|k| (k, None)).collect();
    let mut groups = Vec::new();
    let records = rrset_text(mx_rrset)?;
    match mx_sigs {
        Some(sigs) => {
            let (signer, signer_labels) = first_sig(sigs)?;
            if signer != &q {
                return None;
            }
            let zone = text::name_text(signer_labels);
            let signatures = rrset_text(sigs)?;
            if !has_ds {
                denial(&q, &dm, &parent, &parent_keys, now, max_iterations, jobs, &mut groups)?;
                return Some(Decision { secure: false, zone, records, signatures, groups });
            }
            let keys = signed_zone(&q, &dm, dnskey, &parent, &parent_keys, now, jobs, &mut groups)?;
            let zone_keys: Vec<(&Key, Option<u32>)> = keys.iter().map(|k| (k, None)).collect();
            groups.push(rrsig_group(mx_rrset, Some(sigs), &zone_keys, &q, now, jobs)?);
            Some(Decision { secure: true, zone, records, signatures, groups })
        }
        None => {
            if has_ds {
                return None; // a signed zone's unsigned answer: bogus, with a reason
            }
            let cut = denial(&q, &dm, &parent, &parent_keys, now, max_iterations, jobs, &mut groups)?;
            if !cut {
                return None; // not proved a delegation: the scanner asks for the zone's SOA
            }
            Some(Decision {
                secure: false,
                zone: text::name_text(q_sent),
                records,
                signatures: String::new(),
                groups,
            })
        }
    }
}
