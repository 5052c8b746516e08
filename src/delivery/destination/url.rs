//! Destination URLs: one pattern per kind, used both to validate a URL and, as is, in the
//! contract's schema, so the document and the server accept exactly the same URLs. The
//! host is a name or IPv4 address (no IPv6 literal); credentials only for the buses.

use std::sync::LazyLock;

use regex_lite::Regex;

/// Longest URL accepted.
pub const MAX_URL_CHARS: usize = 2048;

macro_rules! url_pattern {
    ($scheme:literal, $userinfo:expr, $rest:expr) => {
        concat!(
            "^",
            $scheme,
            "://",
            $userinfo,
            "([A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)",
            "(?::([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
            $rest,
            "$"
        )
    };
}

/// `user[:password]@`, optional.
macro_rules! userinfo {
    () => {
        "(?:[A-Za-z0-9._~!$&'()*+,;=%-]+(?::[A-Za-z0-9._~!$&'()*+,;=%-]*)?@)?"
    };
}

/// A path, optional.
macro_rules! path {
    () => {
        "(?:/[A-Za-z0-9._~!$&'()*+,;=%:@/-]*)?"
    };
}

/// `amqp://` or `amqps://`, with credentials, host, port and virtual host.
pub const AMQP_URL_PATTERN: &str = url_pattern!("amqps?", userinfo!(), path!());
/// `mqtt://` or `mqtts://` with credentials, host and port.
pub const MQTT_URL_PATTERN: &str = url_pattern!("mqtts?", userinfo!(), "/?");
/// `http://` or `https://` with host, port, path and query; no credentials.
pub const WEBHOOK_URL_PATTERN: &str = url_pattern!(
    "https?",
    "",
    concat!(path!(), "(?:[?][A-Za-z0-9._~!$&'()*+,;=%:@/?-]*)?")
);

fn compiled(pattern: &'static str) -> Regex {
    // The patterns are constants above; a mistake in one fails every test at once.
    Regex::new(pattern).unwrap_or_else(|err| panic!("URL pattern {pattern}: {err}"))
}

static AMQP: LazyLock<Regex> = LazyLock::new(|| compiled(AMQP_URL_PATTERN));
static MQTT: LazyLock<Regex> = LazyLock::new(|| compiled(MQTT_URL_PATTERN));
static WEBHOOK: LazyLock<Regex> = LazyLock::new(|| compiled(WEBHOOK_URL_PATTERN));

/// Which kind's URL grammar to use.
#[derive(Debug, Clone, Copy)]
pub enum UrlKind {
    Amqp,
    Mqtt,
    Webhook,
}

impl UrlKind {
    /// The URL grammar of destinations of `kind`; `None` for Kafka, which has no URL.
    pub fn of(kind: super::Kind) -> Option<Self> {
        match kind {
            super::Kind::Amqp => Some(Self::Amqp),
            super::Kind::Mqtt => Some(Self::Mqtt),
            super::Kind::Webhook => Some(Self::Webhook),
            super::Kind::Kafka => None,
        }
    }

    pub fn pattern(self) -> &'static str {
        match self {
            Self::Amqp => AMQP_URL_PATTERN,
            Self::Mqtt => MQTT_URL_PATTERN,
            Self::Webhook => WEBHOOK_URL_PATTERN,
        }
    }

    fn regex(self) -> &'static Regex {
        match self {
            Self::Amqp => &AMQP,
            Self::Mqtt => &MQTT,
            Self::Webhook => &WEBHOOK,
        }
    }

    /// The host of `url` when it is a valid URL of this kind.
    pub fn host(self, url: &str) -> Option<&str> {
        self.endpoint(url).map(|(host, _)| host)
    }

    /// The host and port `url` connects to (the scheme's port when it names none), when
    /// it is a valid URL of this kind.
    pub fn endpoint(self, url: &str) -> Option<(&str, u16)> {
        if url.chars().count() > MAX_URL_CHARS {
            return None;
        }
        let captures = self.regex().captures(url)?;
        let host = captures.get(1)?.as_str();
        let port = match captures.get(2) {
            Some(port) => port.as_str().parse().ok()?,
            None => default_port(url),
        };
        Some((host, port))
    }

    /// What a valid URL of this kind looks like, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            Self::Amqp => "amqp[s]://[user[:password]@]host[:port][/vhost]",
            Self::Mqtt => "mqtt[s]://[user[:password]@]host[:port]",
            Self::Webhook => "http[s]://host[:port][/path][?query]",
        }
    }
}

/// The port a scheme connects to when a URL names none.
fn default_port(url: &str) -> u16 {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    match scheme {
        "amqps" => 5671,
        "amqp" => 5672,
        "mqtts" => 8883,
        "mqtt" => 1883,
        "https" => 443,
        _ => 80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_each_kind() {
        let amqp = UrlKind::Amqp;
        assert_eq!(
            amqp.host("amqp://guest:guest@127.0.0.1:5672/%2f"),
            Some("127.0.0.1")
        );
        assert_eq!(
            amqp.host("amqps://broker.example.com"),
            Some("broker.example.com")
        );
        assert_eq!(amqp.host("mqtt://broker"), None);
        assert_eq!(amqp.host("amqp://h:65536"), None, "port out of range");
        assert_eq!(amqp.host("amqp://[::1]"), None, "no IPv6 literal");
        assert_eq!(
            UrlKind::Mqtt.host("mqtt://u:p@127.0.0.1:1883"),
            Some("127.0.0.1")
        );
        let webhook = UrlKind::Webhook;
        assert_eq!(
            webhook.host("https://hooks.example.com/eventgate?x=1"),
            Some("hooks.example.com")
        );
        assert_eq!(webhook.host("https://user:pw@hooks.example.com/"), None);
        assert_eq!(webhook.host("http://h/a b"), None);
        assert_eq!(webhook.host(""), None);
        assert_eq!(amqp.endpoint("amqps://h/vh"), Some(("h", 5671)));
        assert_eq!(webhook.endpoint("http://h:8080/x"), Some(("h", 8080)));
    }
}
