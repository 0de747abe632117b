//! The order in which Postfix's in-memory hash table (util/htable.c) lists its entries, so
//! that `postmap -s inline:{...}` (and `texthash:`) list them as Debian's postmap does when
//! run with `NORANDOMIZE` set.
//!
//! Postfix seeds its string hash from the kernel in each process, so without `NORANDOMIZE`
//! its order is different on every run and any order is faithful; with it, the order is
//! the one computed here: a modified FNV-1a hash (each byte plus one) modulo the table
//! size, the table starting at 13 buckets and growing to 2n+1 when full, each bucket
//! listing its newest entry first.
//!
//! Trust: keys are data; nothing here can fail.

/// FNV-1a offset basis and prime, 64-bit, as util/hash_fnv.c uses them.
const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// The indexes of `keys` (distinct, in insertion order) in the order Postfix's hash table
/// lists them.
pub fn listing_order(keys: &[&str]) -> Vec<usize> {
    let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); 13];
    for (index, key) in keys.iter().enumerate() {
        // htable_enter() grows the table when it holds as many entries as buckets.
        if index >= buckets.len() {
            buckets = grow(&buckets, keys);
        }
        let at = bucket(key, buckets.len());
        // htable_link() pushes onto the head of the chain.
        buckets[at].insert(0, index);
    }
    buckets.into_iter().flatten().collect()
}

/// htable_grow(): a table of 2n+1 buckets, the old entries linked in again bucket by
/// bucket, each chain from its head.
fn grow(old: &[Vec<usize>], keys: &[&str]) -> Vec<Vec<usize>> {
    let size = (2 * old.len()) | 1;
    let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); size];
    for chain in old {
        for &index in chain {
            let at = bucket(keys[index], size);
            buckets[at].insert(0, index);
        }
    }
    buckets
}

fn bucket(key: &str, size: usize) -> usize {
    let mut hash = BASIS;
    for byte in key.bytes() {
        hash ^= u64::from(byte) + 1;
        hash = hash.wrapping_mul(PRIME);
    }
    // The remainder is below `size`, which is a usize.
    usize::try_from(hash % size as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_postfix_with_norandomize() {
        // `NORANDOMIZE=1 postmap -s 'inline:{a=b, c=d, e=f, g=h}'` prints g, e, c, a.
        assert_eq!(listing_order(&["a", "c", "e", "g"]), vec![3, 2, 1, 0]);
        assert!(listing_order(&[]).is_empty());
        let many: Vec<String> = (0..40).map(|n| format!("k{n}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let mut order = listing_order(&refs);
        order.sort_unstable();
        assert_eq!(order, (0..40).collect::<Vec<_>>());
    }
}
