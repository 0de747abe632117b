//! local(8): aliases, .forward, :include:, commands, files and the mailbox (to be written).
