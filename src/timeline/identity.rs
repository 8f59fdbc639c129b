//! A conversation's identity: a hash of its members' keys.

use sha2::{Digest, Sha256};

/// Hex characters of the hash shown as a conversation id.
pub const ID_LEN: usize = 10;

/// The id of the conversation made of segments with these keys: the same
/// members always give the same id, in any order; any change gives a new one.
pub fn conversation_id<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let mut keys: Vec<&str> = keys.into_iter().collect();
    keys.sort_unstable();
    let mut h = Sha256::new();
    for k in keys {
        h.update(k.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())[..ID_LEN].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter_membership_does() {
        let a = conversation_id(["k1", "k2", "k3"]);
        assert_eq!(a, conversation_id(["k3", "k1", "k2"]));
        assert_ne!(a, conversation_id(["k1", "k2"]));
        assert_eq!(a.len(), ID_LEN);
        // Concatenation cannot collide with a different split.
        assert_ne!(conversation_id(["ab", "c"]), conversation_id(["a", "bc"]));
    }
}
