//! The token rules, one test each.

use super::*;

const SECRET: &str = "an hs256 test secret of 32+ bytes";
/// A fixed "now" (2026-11-22T07:17:12Z), so expiry is tested without a wall clock.
fn now() -> Timestamp {
    Timestamp::from_millis(1_795_331_832_000)
}
const HOUR: Duration = Duration::from_secs(3600);

fn auth() -> JwtAuth {
    JwtAuth::new(&SECRET.parse().unwrap())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn exp_secs(t: Timestamp) -> u64 {
    u64::try_from(t.as_millis() / 1000).unwrap()
}

/// A token no honest issuer makes: a header of our choosing and a signature by no key of
/// ours. Enough to prove such headers are refused by name, before any signature check.
fn with_header(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    let part = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!(
        "{}.{}.{}",
        part(header),
        part(claims),
        URL_SAFE_NO_PAD.encode(b"sig")
    )
}

fn claims(role: &str, sub: &str, exp: u64) -> serde_json::Value {
    serde_json::json!({ "sub": sub, "role": role, "exp": exp })
}

#[test]
fn a_minted_token_verifies_as_its_caller() {
    let auth = auth();
    for (role, sub) in [
        (Role::Buyer, "17"),
        (Role::Merchant, "7"),
        (Role::Rider, "42"),
        (Role::Ops, "alice"),
        (Role::Admin, "root"),
        (Role::Service, "payments"),
    ] {
        let token = auth.mint_at(role, sub, now(), HOUR).unwrap();
        let caller = auth.verify_at(&bearer(&token), now()).unwrap();
        assert_eq!((caller.role(), caller.subject()), (role, sub));
    }
    // The wall-clock pair too.
    let token = auth.mint(Role::Buyer, "17", HOUR).unwrap();
    assert_eq!(
        auth.verify(&bearer(&token))
            .unwrap()
            .buyer_id()
            .map(|b| b.get()),
        Some(17)
    );
}

#[test]
fn the_scheme_is_case_insensitive() {
    let auth = auth();
    let token = auth.mint_at(Role::Rider, "42", now(), HOUR).unwrap();
    assert!(auth.verify_at(&format!("bearer  {token}"), now()).is_ok());
}

#[test]
fn an_expired_token_is_refused_after_the_leeway() {
    let auth = auth();
    let token = auth.mint_at(Role::Buyer, "17", now(), HOUR).unwrap();
    let header = bearer(&token);
    let exp = now().plus(HOUR);
    assert!(auth.verify_at(&header, exp).is_ok(), "within the leeway");
    assert_eq!(
        auth.verify_at(&header, exp.plus(LEEWAY)),
        Err(AuthError::Expired)
    );
    let long_gone = auth.sign(&claims("buyer", "17", 1)).unwrap();
    assert_eq!(auth.verify(&bearer(&long_gone)), Err(AuthError::Expired));
}

#[test]
fn a_token_of_another_secret_is_refused() {
    let other = JwtAuth::new(&"another secret, also 32 bytes long".parse().unwrap());
    let token = other.mint_at(Role::Admin, "root", now(), HOUR).unwrap();
    assert_eq!(
        auth().verify_at(&bearer(&token), now()),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn a_tampered_token_is_refused() {
    let auth = auth();
    let token = auth.mint_at(Role::Buyer, "17", now(), HOUR).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let admin =
        URL_SAFE_NO_PAD.encode(claims("admin", "root", exp_secs(now().plus(HOUR))).to_string());
    let forged = format!("{}.{}.{}", parts[0], admin, parts[2]);
    assert_eq!(
        auth.verify_at(&bearer(&forged), now()),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn a_token_without_exp_is_refused() {
    let auth = auth();
    let token = auth
        .sign(&serde_json::json!({ "sub": "17", "role": "buyer" }))
        .unwrap();
    assert_eq!(
        auth.verify_at(&bearer(&token), now()),
        Err(AuthError::MissingExpiry)
    );
}

#[test]
fn alg_none_and_rs256_headers_are_refused() {
    let auth = auth();
    let body = claims("admin", "root", exp_secs(now().plus(HOUR)));
    for header in [
        serde_json::json!({ "alg": "none", "typ": "JWT" }),
        serde_json::json!({ "alg": "RS256", "typ": "JWT" }),
        serde_json::json!({ "alg": "HS512", "typ": "JWT" }),
        serde_json::json!({ "typ": "JWT" }),
    ] {
        let token = with_header(&header, &body);
        assert_eq!(
            auth.verify_at(&bearer(&token), now()),
            Err(AuthError::UnsupportedAlgorithm),
            "{header}"
        );
    }
    // An unsigned token with an empty signature part, as `alg: none` tokens are sent.
    let unsigned = with_header(&serde_json::json!({ "alg": "none" }), &body);
    let unsigned = format!("{}.", unsigned.rsplit_once('.').unwrap().0);
    assert_eq!(
        auth.verify_at(&bearer(&unsigned), now()),
        Err(AuthError::UnsupportedAlgorithm)
    );
}

#[test]
fn an_unknown_or_missing_role_is_refused() {
    let auth = auth();
    let exp = exp_secs(now().plus(HOUR));
    let token = auth.sign(&claims("superuser", "17", exp)).unwrap();
    assert_eq!(
        auth.verify_at(&bearer(&token), now()),
        Err(AuthError::UnknownRole)
    );
    let token = auth.sign(&claims("Buyer", "17", exp)).unwrap();
    assert_eq!(
        auth.verify_at(&bearer(&token), now()),
        Err(AuthError::UnknownRole)
    );
    let token = auth
        .sign(&serde_json::json!({ "sub": "17", "exp": exp }))
        .unwrap();
    assert_eq!(
        auth.verify_at(&bearer(&token), now()),
        Err(AuthError::MissingRole)
    );
}

#[test]
fn a_missing_or_mistyped_subject_is_refused() {
    let auth = auth();
    let exp = exp_secs(now().plus(HOUR));
    let token = auth
        .sign(&serde_json::json!({ "role": "ops", "exp": exp }))
        .unwrap();
    assert_eq!(
        auth.verify_at(&bearer(&token), now()),
        Err(AuthError::MissingSubject)
    );
    let token = auth.sign(&claims("buyer", "alice", exp)).unwrap();
    assert_eq!(
        auth.verify_at(&bearer(&token), now()),
        Err(AuthError::BadSubject { role: Role::Buyer })
    );
    assert_eq!(
        auth.mint_at(Role::Rider, "0", now(), HOUR),
        Err(AuthError::BadSubject { role: Role::Rider })
    );
}

#[test]
fn malformed_headers_and_tokens_are_refused() {
    let auth = auth();
    let token = auth.mint_at(Role::Buyer, "17", now(), HOUR).unwrap();
    for header in [
        String::new(),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        token.clone(),
        format!("Basic {token}"),
        format!("Bearer {token} extra"),
    ] {
        assert_eq!(
            auth.verify_at(&header, now()),
            Err(AuthError::MalformedHeader),
            "{header:?}"
        );
    }
    for token in ["abc", "a.b.c", "!!!.e30.sig", "e30.e30.sig"] {
        let got = auth.verify_at(&bearer(token), now());
        assert!(
            matches!(
                got,
                Err(AuthError::MalformedToken | AuthError::UnsupportedAlgorithm)
            ),
            "{token}: {got:?}"
        );
    }
    // exp of the wrong type.
    let token = auth
        .sign(&serde_json::json!({ "sub": "17", "role": "buyer", "exp": "tomorrow" }))
        .unwrap();
    assert_eq!(
        auth.verify_at(&bearer(&token), now()),
        Err(AuthError::MalformedToken)
    );
}

#[test]
fn messages_leak_neither_token_nor_secret() {
    let auth = auth();
    let token = auth.mint_at(Role::Buyer, "17", now(), HOUR).unwrap();
    let errors = [
        auth.verify_at(&bearer(&token), now().plus(HOUR * 2)),
        auth.verify_at(&format!("Basic {token}"), now()),
        JwtAuth::new(&"x".repeat(40).parse().unwrap()).verify_at(&bearer(&token), now()),
    ];
    for e in errors {
        let message = e.unwrap_err().to_string();
        assert!(
            !message.contains(&token) && !message.contains(SECRET),
            "{message}"
        );
        assert!(message.starts_with(char::is_lowercase), "{message}");
    }
    assert_eq!(format!("{auth:?}"), "JwtAuth { .. }");
}
