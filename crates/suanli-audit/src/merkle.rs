//! RFC 6962 / RFC 9162 Merkle tree hashing: leaves, nodes, roots, inclusion and consistency
//! proofs and their verification (RFC 9162 sections 2.1.1 to 2.1.4).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A SHA-256 hash, written as 64 lower-case hexadecimal digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// SHA-256 of `data`.
    pub fn of(data: &[u8]) -> Hash {
        Hash(Sha256::digest(data).into())
    }
    pub fn to_hex(&self) -> String {
        crate::to_hex(&self.0)
    }
    pub fn from_hex(s: &str) -> Result<Hash, crate::DecodeError> {
        crate::from_hex::<32>(s).map(Hash)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = String::deserialize(d)?;
        Hash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Hash::of(&[])
}

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    Hash(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The largest power of two smaller than `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The root of the tree over `leaves` (leaf hashes), computed in one pass.
pub fn root(leaves: &[Hash]) -> Hash {
    let mut range = CompactRange::default();
    for l in leaves {
        range.push(*l);
    }
    range.root()
}

/// The tree's right edge: the roots of its perfect subtrees, largest first. Appending a leaf
/// and reading the root cost O(log n); the whole log is hashed in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    /// (root, number of leaves under it), sizes strictly decreasing powers of two.
    peaks: Vec<(Hash, u64)>,
}

impl CompactRange {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        self.size += 1;
        let mut cur = (leaf, 1u64);
        while let Some(&(top, n)) = self.peaks.last() {
            if n != cur.1 {
                break;
            }
            self.peaks.pop();
            cur = (node_hash(&top, &cur.0), n * 2);
        }
        self.peaks.push(cur);
    }

    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        let Some(&(mut r, _)) = it.next() else {
            return empty_root();
        };
        for (h, _) in it {
            r = node_hash(h, &r);
        }
        r
    }
}

fn subtree_root(leaves: &[Hash]) -> Hash {
    root(leaves)
}

/// The inclusion proof (audit path) of leaf `index` in the tree over `leaves`; `None` if the
/// index is outside the tree.
pub fn inclusion_proof(index: u64, leaves: &[Hash]) -> Option<Vec<Hash>> {
    if index >= leaves.len() as u64 {
        return None;
    }
    let mut out = Vec::new();
    path(index as usize, leaves, &mut out);
    Some(out)
}

fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
    let n = d.len();
    if n <= 1 {
        return;
    }
    let k = split(n as u64) as usize;
    if m < k {
        path(m, &d[..k], out);
        out.push(subtree_root(&d[k..]));
    } else {
        path(m - k, &d[k..], out);
        out.push(subtree_root(&d[..k]));
    }
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves with root `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// The consistency proof between the tree of the first `old_size` leaves and the tree over
/// all of `leaves`; `None` if `old_size` is larger. Empty when either tree is empty or both
/// are the same size.
pub fn consistency_proof(old_size: u64, leaves: &[Hash]) -> Option<Vec<Hash>> {
    let n = leaves.len() as u64;
    if old_size > n {
        return None;
    }
    let mut out = Vec::new();
    if old_size > 0 && old_size < n {
        subproof(old_size as usize, leaves, true, &mut out);
    }
    Some(out)
}

fn subproof(m: usize, d: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = d.len();
    if m == n {
        if !complete {
            out.push(subtree_root(d));
        }
        return;
    }
    let k = split(n as u64) as usize;
    if m <= k {
        subproof(m, &d[..k], complete, out);
        out.push(subtree_root(&d[k..]));
    } else {
        subproof(m - k, &d[k..], false, out);
        out.push(subtree_root(&d[..k]));
    }
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a prefix of the tree of
/// `new_size` leaves with root `new_root`.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    fr == *old_root && sr == *new_root && snode == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
            .collect()
    }

    /// RFC 6962's recursive definition, written out literally, as the reference.
    fn reference_root(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&reference_root(&d[..k]), &reference_root(&d[k..]))
            }
        }
    }

    #[test]
    fn split_is_the_largest_power_of_two_below() {
        let got: Vec<u64> = (2..=9).map(split).collect();
        assert_eq!(got, vec![1, 2, 2, 4, 4, 4, 4, 8]);
    }

    #[test]
    fn the_empty_tree_and_one_leaf() {
        // RFC 6962: MTH({}) = SHA-256(); MTH({d0}) = SHA-256(0x00 || d0).
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let l = leaf_hash(b"");
        assert_eq!(
            l.to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(root(&[l]), l);
    }

    #[test]
    fn three_leaves_hash_as_the_rfc_draws_them() {
        let d = leaves(3);
        let want = node_hash(&node_hash(&d[0], &d[1]), &d[2]);
        assert_eq!(root(&d), want);
        assert_eq!(
            inclusion_proof(2, &d).unwrap(),
            vec![node_hash(&d[0], &d[1])]
        );
        assert_eq!(inclusion_proof(0, &d).unwrap(), vec![d[1], d[2]]);
        assert_eq!(inclusion_proof(3, &d), None);
    }

    #[test]
    fn consistency_of_equal_and_empty_trees() {
        let d = leaves(5);
        let r = root(&d);
        assert!(verify_consistency(5, 5, &r, &r, &[]));
        assert!(!verify_consistency(5, 5, &r, &empty_root(), &[]));
        assert!(verify_consistency(0, 5, &empty_root(), &r, &[]));
        assert!(!verify_consistency(6, 5, &r, &r, &[]));
        assert_eq!(consistency_proof(6, &d), None);
    }

    proptest! {
        #[test]
        fn the_compact_range_gives_the_rfc_root(n in 0usize..300) {
            let d = leaves(n);
            prop_assert_eq!(root(&d), reference_root(&d));
        }

        #[test]
        fn every_inclusion_proof_verifies_and_a_changed_leaf_fails(n in 1usize..200, pick in any::<prop::sample::Index>(), other in any::<prop::sample::Index>()) {
            let d = leaves(n);
            let r = root(&d);
            let i = pick.index(n);
            let p = inclusion_proof(i as u64, &d).unwrap();
            prop_assert!(verify_inclusion(i as u64, n as u64, &d[i], &p, &r));
            // A changed leaf, the same leaf at another index, or another size all fail.
            let changed = leaf_hash(b"changed");
            prop_assert!(!verify_inclusion(i as u64, n as u64, &changed, &p, &r));
            let j = other.index(n);
            if j != i && d[j] != d[i] {
                prop_assert!(!verify_inclusion(j as u64, n as u64, &d[i], &p, &r));
            }
            // Nor does the proof hold against the root of a longer tree.
            let mut longer = d.clone();
            longer.push(leaf_hash(b"appended"));
            prop_assert!(!verify_inclusion(i as u64, n as u64 + 1, &d[i], &p, &root(&longer)));
        }

        #[test]
        fn consistency_holds_between_any_two_sizes(n in 1usize..200, a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
            let d = leaves(n);
            let (m, k) = {
                let (x, y) = (a.index(n + 1), b.index(n + 1));
                (x.min(y), x.max(y))
            };
            let old = root(&d[..m]);
            let new = root(&d[..k]);
            let p = consistency_proof(m as u64, &d[..k]).unwrap();
            prop_assert!(verify_consistency(m as u64, k as u64, &old, &new, &p));
            if m > 0 && m < k {
                // A rewritten old tree is not consistent with the new one.
                let mut forged = d[..m].to_vec();
                forged[m - 1] = leaf_hash(b"rewritten");
                prop_assert!(!verify_consistency(m as u64, k as u64, &root(&forged), &new, &p));
                // Nor is a new tree that rewrote the old part.
                let mut forged_new = d[..k].to_vec();
                forged_new[0] = leaf_hash(b"rewritten");
                prop_assert!(!verify_consistency(m as u64, k as u64, &old, &root(&forged_new), &p));
            }
        }
    }
}
