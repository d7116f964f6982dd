//! Database and NATS URLs with their passwords hidden, for logs, errors and printed
//! configuration.

/// A database URL without its password, for printing.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A shard map (`0-15=postgres://…;16-31=postgres://…`) or a single URL, every password hidden.
pub fn redact_map(spec: &str) -> String {
    spec.split(';')
        .map(|part| match part.split_once('=') {
            Some((range, url)) if !range.contains("://") => format!("{range}={}", redact(url)),
            _ => redact(part),
        })
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::{redact, redact_map};

    #[test]
    fn redact_map_hides_every_password() {
        assert_eq!(
            redact_map("0-15=postgres://u:a@h/x;16-31=postgres://u:b@h/y?sslmode=disable"),
            "0-15=postgres://u:***@h/x;16-31=postgres://u:***@h/y?sslmode=disable"
        );
        assert_eq!(
            redact_map("postgres://u:a@h/x?sslmode=disable"),
            "postgres://u:***@h/x?sslmode=disable"
        );
    }

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
