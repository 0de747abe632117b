//! smtpd_reject_footer and smtpd_reject_footer_maps (smtpd_chat.c, smtp_reply_footer.c):
//! text added to every 4xx and 5xx reply smtpd sends. The footer comes from
//! smtpd_reject_footer_maps (looked up with the whole reply text) or else
//! smtpd_reject_footer; `\n` in it starts a new reply line (the reply code and enhanced
//! status code are repeated), `\c` at its start continues the last line; `$name` is
//! expanded as smtpd expands it (`client_address`, `client_name`, `client_port`,
//! `reverse_client_name`, `helo_name`, `server_name`, `localtime`, `sender`,
//! `recipient` and their `_name` and `_domain` forms). A footer that does not expand
//! leaves the reply as it was.
//!
//! Trust: the footer is the administrator's; the client's HELO name and addresses that
//! it may name are cut to smtpd_expansion_filter's characters (printable ASCII), as
//! mac_expand() does.

use std::collections::HashMap;

use tern_config::config::Config;
use tern_config::expand::{Mode, expand};
use tern_config::mastercf::Service;
use tern_maps::Map;
use tern_smtp::reply::Reply;

use crate::relay::PolicyError;

/// The footer settings of one smtpd service.
#[derive(Debug, Default)]
pub struct RejectFooter {
    text: String,
    maps: Vec<Box<dyn Map>>,
}

/// What the footer may name about the session.
#[derive(Debug, Clone, Default)]
pub struct FooterFacts<'a> {
    pub server_name: &'a str,
    pub client_name: &'a str,
    pub client_address: &'a str,
    pub client_port: u16,
    pub reverse_client_name: &'a str,
    pub helo_name: &'a str,
    pub sender: &'a str,
    pub recipient: &'a str,
}

impl RejectFooter {
    /// Reads smtpd_reject_footer (raw) and opens smtpd_reject_footer_maps.
    pub fn from_config(config: &Config, service: Option<&Service>) -> Result<Self, PolicyError> {
        let text = config
            .lookup_value("smtpd_reject_footer", service)
            .unwrap_or_default();
        let raw = config
            .lookup_value("smtpd_reject_footer_maps", service)
            .unwrap_or_default();
        let value = config.expand(&raw, service)?.text;
        let maps = tern_config::list::split(&value)
            .unwrap_or_default()
            .iter()
            .map(|spec| crate::recipients::open_table_exact(spec, &[], &crate::relay::error))
            .collect();
        Ok(RejectFooter { text, maps })
    }

    /// Whether any footer can apply.
    pub fn is_set(&self) -> bool {
        !self.text.is_empty() || !self.maps.is_empty()
    }

    /// `reply` with its footer, or `None` when none applies.
    pub fn apply(&self, reply: &Reply, facts: &FooterFacts<'_>) -> Option<Reply> {
        if reply.code() < 400 || !self.is_set() {
            return None;
        }
        let key = reply.to_string();
        let from_map = self.maps.iter().find_map(|m| m.lookup(&key).ok().flatten());
        let template = from_map.unwrap_or_else(|| self.text.clone());
        if template.is_empty() {
            return None;
        }
        let lookup = facts.table();
        let mut lines: Vec<String> = reply.lines().to_vec();
        for (i, piece) in template.split("\\n").enumerate() {
            let (piece, continued) = match piece.strip_prefix("\\c") {
                Some(rest) if i == 0 => (rest, true),
                _ => (piece, false),
            };
            let text = expand(piece, &lookup, Mode::Once).ok()?.text;
            match (continued, lines.last_mut()) {
                (true, Some(last)) => last.push_str(&text),
                _ => lines.push(text),
            }
        }
        Reply::new(reply.code(), reply.enhanced(), lines).ok()
    }
}

impl FooterFacts<'_> {
    /// smtpd_expand_lookup()'s names, values cut to the expansion filter.
    fn table(&self) -> HashMap<String, String> {
        use crate::check::dns::rbl::expand_addr;
        let mut t: HashMap<String, String> = HashMap::new();
        let mut put = |k: &str, v: String| {
            let v = v
                .chars()
                .map(|c| {
                    if c == '\t' || (' '..='~').contains(&c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            t.insert(k.to_owned(), v);
        };
        put("server_name", self.server_name.to_owned());
        put(
            "client",
            format!("{}[{}]", self.client_name, self.client_address),
        );
        put("client_address", self.client_address.to_owned());
        put("client_name", self.client_name.to_owned());
        put("client_port", self.client_port.to_string());
        put("reverse_client_name", self.reverse_client_name.to_owned());
        put("helo_name", self.helo_name.to_owned());
        put(
            "localtime",
            tern_maillog::prefix::Timestamp::now().to_string(),
        );
        for (name, addr) in [("sender", self.sender), ("recipient", self.recipient)] {
            for suffix in ["", "_name", "_domain"] {
                if let Some(v) = expand_addr(addr, suffix) {
                    put(&format!("{name}{suffix}"), v);
                }
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_smtp::reply::EnhancedStatus;

    fn footer(text: &str) -> RejectFooter {
        RejectFooter {
            text: text.to_owned(),
            maps: Vec::new(),
        }
    }

    #[test]
    fn lines_and_continuation() {
        let facts = FooterFacts {
            client_address: "192.0.2.1",
            server_name: "mx.example.test",
            ..FooterFacts::default()
        };
        let status: EnhancedStatus = "5.7.1".parse().unwrap();
        let r = Reply::new(554, Some(status), ["<a@b>: Relay access denied"]).unwrap();
        let got = footer("Contact postmaster@$server_name.\\nYour address: $client_address")
            .apply(&r, &facts)
            .unwrap();
        assert_eq!(
            got.to_wire(true),
            "554-5.7.1 <a@b>: Relay access denied\r\n\
             554-5.7.1 Contact postmaster@mx.example.test.\r\n\
             554 5.7.1 Your address: 192.0.2.1\r\n"
        );
        let got = footer("\\c (see the FAQ)").apply(&r, &facts).unwrap();
        assert_eq!(
            got.to_wire(true),
            "554 5.7.1 <a@b>: Relay access denied (see the FAQ)\r\n"
        );
        let ok = Reply::new(250, None, ["Ok"]).unwrap();
        assert!(footer("x").apply(&ok, &facts).is_none());
    }
}
