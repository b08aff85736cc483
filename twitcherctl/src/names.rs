//! Friendly random service names (`adjective_bird`) for `register` without `--name`.
//!
//! The original invented names like `sleepy_flamingo`; these are our own word lists. Every
//! name is lower-case letters and one `_`, at most 25 characters, so the server keeps it
//! unchanged (it lower-cases, replaces non-word characters and cuts at 25).

use rand::seq::IndexedRandom;

const ADJECTIVES: &[&str] = &[
    "agile", "bashful", "blissful", "brave", "breezy", "bright", "calm", "cheerful", "clever",
    "cosy", "curious", "daring", "dreamy", "eager", "earnest", "fearless", "fluffy", "gentle",
    "gleeful", "graceful", "happy", "hasty", "humble", "jolly", "keen", "kind", "lively", "lucky",
    "merry", "mighty", "modest", "nimble", "noble", "patient", "peaceful", "plucky", "proud",
    "quiet", "quirky", "radiant", "restless", "shy", "silly", "sleepy", "spry", "steady", "sunny",
    "swift", "tidy", "vivid", "wise", "witty", "zealous",
];

const BIRDS: &[&str] = &[
    "albatross",
    "avocet",
    "bittern",
    "bluethroat",
    "bunting",
    "buzzard",
    "chaffinch",
    "chiffchaff",
    "cormorant",
    "crane",
    "crossbill",
    "cuckoo",
    "curlew",
    "dipper",
    "dunnock",
    "egret",
    "eider",
    "falcon",
    "fieldfare",
    "flamingo",
    "gannet",
    "godwit",
    "goldcrest",
    "goldfinch",
    "goshawk",
    "grebe",
    "greenshank",
    "harrier",
    "heron",
    "hoopoe",
    "jackdaw",
    "kestrel",
    "kingfisher",
    "kittiwake",
    "lapwing",
    "linnet",
    "magpie",
    "merlin",
    "nightjar",
    "nuthatch",
    "oriole",
    "osprey",
    "pelican",
    "petrel",
    "plover",
    "puffin",
    "redstart",
    "robin",
    "sanderling",
    "shrike",
    "siskin",
    "skylark",
    "starling",
    "stonechat",
    "swift",
    "treecreeper",
    "wagtail",
    "waxwing",
    "woodpecker",
    "wren",
];

/// A random name such as `plucky_puffin`.
pub fn random() -> String {
    let mut rng = rand::rng();
    let adjective = ADJECTIVES.choose(&mut rng).copied().unwrap_or("happy");
    let bird = BIRDS.choose(&mut rng).copied().unwrap_or("robin");
    format!("{adjective}_{bird}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_survives_the_servers_name_rules() {
        for adjective in ADJECTIVES {
            for bird in BIRDS {
                let name = format!("{adjective}_{bird}");
                assert!(name.len() <= 25, "{name} is longer than 25 characters");
                assert!(
                    name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "{name} has characters the server would rewrite"
                );
            }
        }
    }

    #[test]
    fn lists_are_big_enough_and_free_of_duplicates() {
        for list in [ADJECTIVES, BIRDS] {
            assert!(list.len() >= 50);
            let mut sorted = list.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), list.len());
        }
    }

    #[test]
    fn random_names_look_like_adjective_bird() {
        for _ in 0..100 {
            let name = random();
            let (adjective, bird) = name.split_once('_').unwrap();
            assert!(ADJECTIVES.contains(&adjective));
            assert!(BIRDS.contains(&bird));
        }
    }
}
