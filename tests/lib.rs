//! Integration tests live in the main tree; this worktree only carries the facts unit tests.
