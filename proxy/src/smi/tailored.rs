//! The tailored configuration (`client_cfg_pnp.txt`) pushed to new clients:
//! it makes a client telnet back to the proxy (so that the proxy learns its
//! UDI from `show version`) and names the proxy as its director.
use std::net::Ipv4Addr;

use super::codec::{UnsafeText, cli_safe};
use super::telnet::TELNET_PORT;

/// File name the vendor uses; regenerated at every start.
pub const FILE_NAME: &str = "client_cfg_pnp.txt";

/// Credentials written into the tailored configuration.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// `enable password` value.
    pub enable_password: String,
    /// `username` value.
    pub username: String,
}

/// Renders the tailored configuration, as the vendor chapter shows it.
/// Credentials become IOS CLI: quotes, CR, LF and control characters are
/// refused.
pub fn render(proxy: Ipv4Addr, creds: &Credentials) -> Result<String, UnsafeText> {
    let enable = cli_safe(&creds.enable_password, 64)?;
    let user = cli_safe(&creds.username, 64)?;
    for word in [user, enable] {
        if let Some(at) = word.find(' ') {
            return Err(UnsafeText::Space(at));
        }
    }
    Ok(format!(
        "!\nversion 12.2\n!\nenable password {enable}\n!\nusername {user}\n!\n\
         ip http authentication enable\n!\ndo telnet {proxy} {TELNET_PORT}\n!\n\
         vstack director {proxy}\n!\nend\n!\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_chapter_layout() {
        let creds = Credentials {
            enable_password: "cisco".into(),
            username: "cisco".into(),
        };
        let text = render(Ipv4Addr::new(5, 1, 1, 1), &creds).unwrap();
        assert_eq!(
            text,
            "!\nversion 12.2\n!\nenable password cisco\n!\nusername cisco\n!\n\
             ip http authentication enable\n!\ndo telnet 5.1.1.1 19140\n!\n\
             vstack director 5.1.1.1\n!\nend\n!\n"
        );
    }

    #[test]
    fn refuses_injection() {
        let creds = Credentials {
            enable_password: "x\nusername evil".into(),
            username: "cisco".into(),
        };
        assert!(render(Ipv4Addr::LOCALHOST, &creds).is_err());
    }
}
