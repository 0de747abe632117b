//! `postfix`: the control command (`check` for now; `start`, `stop` and the rest come with the
//! daemon).
