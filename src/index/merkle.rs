//! Merkle branches (docs/protocol.md, Merkle branches), for transaction proofs and header
//! checkpoints.

use anode_coins::hash::sha256d;

use crate::query::Hash32;

fn parent(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut pair = [0u8; 64];
    pair[..32].copy_from_slice(left);
    pair[32..].copy_from_slice(right);
    sha256d(&pair)
}

/// The branch of leaf `index` (siblings from the bottom up) and the root. Odd levels duplicate
/// their last node; a single leaf has an empty branch and is its own root. `None` when `index`
/// is not a leaf.
pub fn branch_and_root(leaves: &[Hash32], index: usize) -> Option<(Vec<Hash32>, Hash32)> {
    if index >= leaves.len() {
        return None;
    }
    let mut level = leaves.to_vec();
    let mut index = index;
    let mut branch = Vec::new();
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            let last = level[level.len() - 1];
            level.push(last);
        }
        branch.push(level[index ^ 1]);
        level = level
            .chunks_exact(2)
            .map(|pair| parent(&pair[0], &pair[1]))
            .collect();
        index >>= 1;
    }
    Some((branch, level[0]))
}

/// The root reached from `leaf` at `index` through `branch`.
pub fn root_from_branch(leaf: &Hash32, index: usize, branch: &[Hash32]) -> Hash32 {
    let mut hash = *leaf;
    let mut index = index;
    for sibling in branch {
        hash = if index & 1 == 1 {
            parent(sibling, &hash)
        } else {
            parent(&hash, sibling)
        };
        index >>= 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::{hash_from_hex, hash_to_hex};

    fn id(c: char) -> Hash32 {
        hash_from_hex(&c.to_string().repeat(64)).expect("hex")
    }

    #[test]
    fn protocol_vector_for_three_transactions() {
        let leaves = [id('1'), id('2'), id('3')];
        let (branch, root) = branch_and_root(&leaves, 2).expect("leaf");
        let shown: Vec<String> = branch.iter().map(hash_to_hex).collect();
        assert_eq!(
            shown,
            [
                "3".repeat(64),
                "ba982c0808a9a03c4e958ae612516f85faac3780dcb34d9ab83ceeaf74b54011".to_string()
            ]
        );
        assert_eq!(
            hash_to_hex(&root),
            "e6f5f3a082e7117eca9f5b077b5f9e08a64c213c92f4b6377af3825e5c89cdca"
        );
        let (branch0, _) = branch_and_root(&leaves, 0).expect("leaf");
        assert_eq!(
            hash_to_hex(&branch0[1]),
            "4d20e68c68750c24821ab555f35234854017219926f9f1c3fa9402493bb599ee"
        );
        for (i, leaf) in leaves.iter().enumerate() {
            let (branch, root) = branch_and_root(&leaves, i).expect("leaf");
            assert_eq!(root_from_branch(leaf, i, &branch), root);
        }
        assert_eq!(branch_and_root(&leaves, 3), None);
        assert_eq!(branch_and_root(&[id('4')], 0), Some((vec![], id('4'))));
        assert_eq!(
            anode_coins::merkle_root(&leaves),
            branch_and_root(&leaves, 0).expect("leaf").1
        );
    }
}
