//! Integration tests: the real application on a real port, a wiremock provider behind it.

mod helpers;
mod token;
