//! An error and its sources, walked and displayed in one place.

use std::error::Error;
use std::fmt;

/// `error`, then its source, its source's source, and so on.
pub fn chain<'a>(
    error: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&error| error.source())
}

/// Displays an error and its sources, `a: b: c`.
pub struct DisplayChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in chain(self.0).enumerate() {
            if i > 0 {
                f.write_str(": ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn walks_and_displays_every_source() {
        let error = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&error).count(), 2);
        assert_eq!(DisplayChain(&error).to_string(), "outer: inner");
    }
}
