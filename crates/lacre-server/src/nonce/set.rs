//! The in-memory half of every nonce store: keyed digests of
//! `(client_id, nonce)` pairs and the second each one expires at, 16 bytes
//! a table slot.

use lacre_proto::NonceError;
use sha2::Digest as _;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// Bytes of a digest, in memory and in the journal.
pub(crate) const DIGEST_BYTES: usize = 12;

/// A pair's keyed digest: 96 bits of a keyed SHA-256. An accidental
/// collision between two live nonces (a fresh request wrongly refused as a
/// replay) has a probability of about `live / 2^96` a request, below 10^-20
/// with a hundred million live nonces; the key is secret, so collisions
/// cannot be aimed. Stored as `u32`s so that a slot (digest and expiry)
/// takes 16 bytes, not the 32 a `u128` key's alignment would cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Digest([u32; 3]);

impl Digest {
    /// The digest as stored in a journal file.
    pub(crate) fn to_bytes(self) -> [u8; DIGEST_BYTES] {
        let [a, b, c] = self.0.map(u32::to_le_bytes);
        [
            a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], c[0], c[1], c[2], c[3],
        ]
    }

    /// A digest read back from a journal file.
    pub(crate) fn from_bytes(b: [u8; DIGEST_BYTES]) -> Digest {
        Digest([
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
        ])
    }
}

impl Hash for Digest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already uniform and keyed: its first 64 bits are the hash.
        state.write_u64(u64::from(self.0[0]) | (u64::from(self.0[1]) << 32));
    }
}

/// Passes a [`Digest`]'s own bits through as its hash (hashing a keyed
/// digest again would only cost time).
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for `Digest`; a fold keeps it a hash all the same.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Makes the digests: SHA-256 over the key, then the client id's length
/// (so the pairs ("a", "bc") and ("ab", "c") differ), the client id and
/// the nonce. The 32-byte key fills the first block with zero padding, so
/// each digest starts from a saved state.
#[derive(Clone)]
pub(crate) struct Keyer(sha2::Sha256);

impl Keyer {
    /// A keyer under `key`.
    pub(crate) fn new(key: &[u8; 32]) -> Keyer {
        let mut h = sha2::Sha256::new();
        h.update(key);
        h.update([0u8; 32]);
        Keyer(h)
    }

    /// The digest of one pair.
    pub(crate) fn digest(&self, client_id: &str, nonce: &str) -> Digest {
        let mut h = self.0.clone();
        h.update((client_id.len() as u64).to_le_bytes());
        h.update(client_id.as_bytes());
        h.update(nonce.as_bytes());
        let out: [u8; 32] = h.finalize().into();
        Digest::from_bytes([
            out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7], out[8], out[9],
            out[10], out[11],
        ])
    }

    /// Eight bytes that identify the key without revealing it (a journal
    /// file records which key its digests were made with).
    pub(crate) fn fingerprint(&self) -> [u8; 8] {
        let mut h = self.0.clone();
        h.update(b"lacre nonce journal key fingerprint");
        let out: [u8; 32] = h.finalize().into();
        [
            out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7],
        ]
    }
}

/// An expiry instant in whole seconds, rounded up (remembering a nonce for
/// up to a second longer only refuses what is stale anyway).
pub(crate) fn expiry_second(expires_at_ms: i64) -> u32 {
    let s = expires_at_ms.div_euclid(1000) + i64::from(expires_at_ms.rem_euclid(1000) != 0);
    u32::try_from(s.max(0)).unwrap_or(u32::MAX)
}

/// Whether a record expiring at second `expires_s` is still live at
/// `now_ms`.
pub(crate) fn live(expires_s: u32, now_ms: i64) -> bool {
    i64::from(expires_s) * 1000 >= now_ms
}

/// Tables the set is split into, by digest: a table that outgrows its
/// capacity is rehashed under the set's lock, and one table of millions of
/// entries took ~185 ms to double (the worst request of a 60 s run); a
/// 64th of it takes a 64th of that.
const SHARDS: usize = 64;

type Table = HashMap<Digest, u32, BuildHasherDefault<PassThrough>>;

/// Digests to their expiry second.
pub(crate) struct NonceSet {
    shards: Vec<Table>,
}

impl Default for NonceSet {
    fn default() -> Self {
        NonceSet {
            shards: (0..SHARDS).map(|_| Table::default()).collect(),
        }
    }
}

impl NonceSet {
    /// The table of `d` (the digest's last word: independent of the bits
    /// the table hashes with).
    /// (`shards` always holds SHARDS tables: `None` does not happen, and
    /// callers fail closed if it did.)
    fn shard(&mut self, d: &Digest) -> Option<&mut Table> {
        self.shards.get_mut(d.0[2] as usize % SHARDS)
    }

    /// Records `d` until `expires_s` unless a live record exists
    /// ([`NonceError::Replayed`]); an expired record is replaced.
    pub(crate) fn record(
        &mut self,
        d: Digest,
        expires_s: u32,
        now_ms: i64,
    ) -> Result<(), NonceError> {
        let Some(table) = self.shard(&d) else {
            return Err(NonceError::Unavailable);
        };
        match table.entry(d) {
            std::collections::hash_map::Entry::Occupied(mut e) => {
                if live(*e.get(), now_ms) {
                    return Err(NonceError::Replayed);
                }
                e.insert(expires_s);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(expires_s);
            }
        }
        Ok(())
    }

    /// Remembers `d` until at least `expires_s`, whatever was recorded
    /// before (replaying a journal, importing old records).
    pub(crate) fn restore(&mut self, d: Digest, expires_s: u32) {
        if let Some(table) = self.shard(&d) {
            let e = table.entry(d).or_insert(expires_s);
            *e = (*e).max(expires_s);
        }
    }

    /// Forgets `d` (its durable recording failed).
    pub(crate) fn forget(&mut self, d: Digest) {
        if let Some(table) = self.shard(&d) {
            table.remove(&d);
        }
    }

    /// Forgets `d` if its record expires at or before `expires_s` (a later
    /// record of a re-used nonce stays).
    pub(crate) fn expire(&mut self, d: Digest, expires_s: u32) {
        if let Some(table) = self.shard(&d) {
            if table.get(&d).is_some_and(|e| *e <= expires_s) {
                table.remove(&d);
            }
        }
    }

    /// Records held.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(Table::len).sum()
    }

    /// Bytes the table holds (slots and control bytes), for the figures.
    pub(crate) fn table_bytes(&self) -> usize {
        let slots: usize = self.shards.iter().map(Table::capacity).sum();
        slots * (std::mem::size_of::<(Digest, u32)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<(Digest, u32)>(), 16);
    }

    #[test]
    fn digests_are_keyed_and_separate_the_fields() {
        let (a, b) = (Keyer::new(&[1; 32]), Keyer::new(&[2; 32]));
        assert_ne!(a.digest("c", "n"), b.digest("c", "n"));
        assert_eq!(a.digest("c", "n"), a.clone().digest("c", "n"));
        assert_ne!(a.digest("a", "bc"), a.digest("ab", "c"));
        assert_ne!(a.fingerprint(), b.fingerprint());
        let d = a.digest("c", "n");
        assert_eq!(Digest::from_bytes(d.to_bytes()), d);
    }

    #[test]
    fn expiry_rounds_up_to_the_second() {
        assert_eq!(expiry_second(1000), 1);
        assert_eq!(expiry_second(1001), 2);
        assert_eq!(expiry_second(-5), 0);
        assert_eq!(expiry_second(i64::MAX), u32::MAX);
        assert!(live(2, 2000) && !live(2, 2001));
    }

    #[test]
    fn a_live_record_refuses_and_an_expired_one_is_replaced() {
        let k = Keyer::new(&[3; 32]);
        let mut s = NonceSet::default();
        let d = k.digest("c", "n");
        assert_eq!(s.record(d, 5, 1000), Ok(()));
        assert_eq!(s.record(d, 9, 5000), Err(NonceError::Replayed));
        assert_eq!(s.record(d, 9, 5001), Ok(()));
        // The older bucket's sweep leaves the newer record alone.
        s.expire(d, 5);
        assert_eq!(s.len(), 1);
        s.expire(d, 9);
        assert_eq!(s.len(), 0);
        s.restore(d, 7);
        s.restore(d, 3);
        assert_eq!(s.record(d, 9, 7000), Err(NonceError::Replayed));
    }
}
