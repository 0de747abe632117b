//! The policy delegation client: the interface the engine calls. This file is a
//! placeholder while the policy branch writes the client; every query answers the default
//! action (`451 4.3.5 Server configuration problem`), as Postfix does when the server
//! cannot be reached.

#![allow(clippy::unused_async)]

use tern_config::config::Config;
use tern_config::mastercf::Service;

/// The policy request attributes, as smtpd fills them (SMTPD_POLICY_README).
#[derive(Debug, Clone, Default)]
pub struct PolicyRequest {
    pub protocol_state: String,
    pub protocol_name: String,
    pub helo_name: String,
    pub queue_id: String,
    pub sender: String,
    pub recipient: String,
    pub recipient_count: u32,
    pub client_address: String,
    pub client_name: String,
    pub reverse_client_name: String,
    pub instance: String,
    pub sasl_method: String,
    pub sasl_username: String,
    pub sasl_sender: String,
    pub size: u64,
    pub ccert_subject: String,
    pub ccert_issuer: String,
    pub ccert_fingerprint: String,
    pub ccert_pubkey_fingerprint: String,
    pub encryption_protocol: String,
    pub encryption_cipher: String,
    pub encryption_keysize: u32,
    pub etrn_domain: String,
    pub stress: String,
    pub client_port: u16,
    pub server_address: String,
    pub server_port: u16,
}

/// The settings of one smtpd service.
#[derive(Debug, Clone, Default)]
pub struct PolicySettings {
    pub default_action: String,
}

impl PolicySettings {
    pub fn from_config(
        _config: &Config,
        _service: Option<&Service>,
    ) -> Result<Self, crate::relay::PolicyError> {
        Ok(Self {
            default_action: "451 4.3.5 Server configuration problem".to_owned(),
        })
    }
}

/// The clients of one settings load.
#[derive(Debug, Default)]
pub struct PolicyClients {
    settings: PolicySettings,
}

impl PolicyClients {
    pub fn new(settings: PolicySettings) -> Self {
        Self { settings }
    }

    pub async fn query(&self, _server: &str, _request: &PolicyRequest) -> String {
        self.settings.default_action.clone()
    }
}
