//! The key a prefix-hash balancer routes on: a hash of a conversation's
//! opening, the part of an OpenAI body that every later turn repeats (the
//! system prompt and the first user turn), so that all the turns of one chat
//! land where its KV cache is.
//!
//! The body is parsed once more, borrowing: message contents are hashed as
//! the raw JSON they arrived as, never decoded or copied, and only the
//! leading characters of each count.

use std::hash::{DefaultHasher, Hash, Hasher};

use autoglm_core::service::PrefixHash;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The fields of a chat or completion request that make its opening.
#[derive(Debug, Deserialize)]
struct Opening<'a> {
    #[serde(borrow, default)]
    messages: Option<Vec<Turn<'a>>>,
    #[serde(borrow, default)]
    prompt: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
struct Turn<'a> {
    #[serde(borrow, default)]
    role: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

/// The routing key of `body`: its messages up to and including the
/// `user_messages`-th user turn, or its prompt, each cut to
/// `prefix_char_length` characters. `None` when the body has neither (an
/// embeddings request, say), which the balancer answers by least load.
pub fn key(body: &[u8], config: &PrefixHash) -> Option<u64> {
    let opening: Opening<'_> = serde_json::from_slice(body).ok()?;
    let cap = config.prefix_char_length as usize;
    let mut hasher = DefaultHasher::new();
    match (opening.messages, opening.prompt) {
        (Some(messages), _) if !messages.is_empty() => {
            let mut users = 0;
            for turn in &messages {
                let role = turn.role.map_or("", RawValue::get);
                role.hash(&mut hasher);
                leading(turn.content.map_or("", RawValue::get), cap).hash(&mut hasher);
                if role == "\"user\"" {
                    users += 1;
                    if users >= config.user_messages {
                        break;
                    }
                }
            }
        }
        (_, Some(prompt)) => leading(prompt.get(), cap).hash(&mut hasher),
        _ => return None,
    }
    Some(hasher.finish())
}

/// The first `chars` characters of `text`.
fn leading(text: &str, chars: usize) -> &str {
    match text.char_indices().nth(chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> PrefixHash {
        PrefixHash::default()
    }

    fn chat(messages: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"model": "chat", "messages": messages})).unwrap()
    }

    #[test]
    fn every_turn_of_a_conversation_has_the_key_of_its_first() {
        let system = json!({"role": "system", "content": "You are terse. ".repeat(40)});
        let first = chat(json!([system, {"role": "user", "content": "Name a prime."}]));
        let third = chat(json!([
            system,
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "content": "7"},
            {"role": "user", "content": "Another."},
            {"role": "assistant", "content": "11"},
            {"role": "user", "content": "And one more, larger than a hundred."},
        ]));
        assert_eq!(key(&first, &config()), key(&third, &config()));
        assert!(key(&first, &config()).is_some());
    }

    #[test]
    fn conversations_sharing_a_system_prompt_differ_by_their_first_question() {
        let system = json!({"role": "system", "content": "You are terse. ".repeat(40)});
        let a = chat(json!([system, {"role": "user", "content": "Name a prime."}]));
        let b = chat(json!([system, {"role": "user", "content": "Name a colour."}]));
        assert_ne!(key(&a, &config()), key(&b, &config()));
    }

    #[test]
    fn only_the_leading_characters_count() {
        let cut = PrefixHash {
            prefix_char_length: 5,
            ..PrefixHash::default()
        };
        // The raw JSON counts, quote included: `"Hell` is the key of both.
        let a = chat(json!([{"role": "user", "content": "Hello there"}]));
        let b = chat(json!([{"role": "user", "content": "Hello world"}]));
        let c = chat(json!([{"role": "user", "content": "Help me"}]));
        assert_eq!(key(&a, &cut), key(&b, &cut));
        assert_ne!(key(&a, &cut), key(&c, &cut));
    }

    #[test]
    fn more_user_messages_make_a_longer_opening() {
        let two = PrefixHash {
            user_messages: 2,
            ..PrefixHash::default()
        };
        let a = chat(json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Tell me a story"},
        ]));
        let b = chat(json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Tell me a joke"},
        ]));
        assert_eq!(key(&a, &config()), key(&b, &config()));
        assert_ne!(key(&a, &two), key(&b, &two));
    }

    #[test]
    fn a_completion_is_keyed_by_its_prompt_and_other_bodies_by_nothing() {
        let body = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();
        let a = body(json!({"model": "m", "prompt": "Once upon a time"}));
        let b = body(json!({"model": "m", "prompt": "Once upon a time, again"}));
        assert_ne!(key(&a, &config()), key(&b, &config()));
        assert!(key(&a, &config()).is_some());
        assert_eq!(
            key(&body(json!({"model": "m", "input": "text"})), &config()),
            None
        );
        assert_eq!(key(&chat(json!([])), &config()), None);
        assert_eq!(key(b"not json", &config()), None);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        assert_eq!(leading("héllo", 2), "hé");
        assert_eq!(leading("hé", 10), "hé");
    }
}
