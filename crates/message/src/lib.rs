//! Sans-IO RFC 5322 message handling: headers, addresses, cleanup header work.
