//! A finished generation's token counts, and the OpenAI `usage` object
//! that reports them (cached prompt tokens under `prompt_tokens_details`,
//! as OpenAI reports its own prompt caching).

use serde_json::{Value, json};

/// Token counts of one finished generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenUsage {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Of those, the ones found in the KV cache.
    pub cached_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
}

impl TokenUsage {
    /// The OpenAI `usage` object.
    pub fn openai(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_tokens_are_reported_as_openai_does() {
        let usage = TokenUsage {
            prompt_tokens: 120,
            cached_tokens: 100,
            completion_tokens: 8,
        };
        assert_eq!(
            usage.openai(),
            json!({"prompt_tokens": 120, "completion_tokens": 8, "total_tokens": 128,
                   "prompt_tokens_details": {"cached_tokens": 100}})
        );
    }
}
