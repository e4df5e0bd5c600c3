//! End-to-end tests of the Kick emulator over real HTTP, with a reqwest client configured like
//! the proxy's (no redirects followed).

mod authorize;
mod faults;
mod helpers;
mod lifecycle;
mod token;
