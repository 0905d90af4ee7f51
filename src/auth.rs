//! Authentication primitives: password hashes, random tokens and roles.
//!
//! This module owns the rules of DESIGN.md "Security" that do not need the
//! database:
//!
//! - **Passwords** are hashed with argon2id, m = 64 MiB, t = 3, p = 4 and a
//!   32-byte output (RFC 9106's second recommended set) under a random
//!   16-byte salt, stored as a PHC string (`$argon2id$v=19$m=65536,t=3,p=4$…`).
//!   [`verify_password`] reads the parameters from the stored string, so
//!   hashes made with other parameters keep verifying; the comparison of
//!   outputs is constant-time (argon2's `Output` equality).
//! - **Tokens** (session, agent, enrolment, API) are 256 random bits written
//!   as 64 lower-case hex characters. Only [`hash_token`] (SHA-256, hex) of
//!   a token is stored; the token itself is shown once and never logged.
//!   Tokens carry no type prefix: a token is only ever looked up in the
//!   table of its own kind, so the prefix would add nothing to the check.
//! - **Roles**: [`Role::Viewer`] < [`Role::Operator`] < [`Role::Admin`],
//!   each allowed everything the lower ones are.
//! - **Accounts**: a username is 1 to 64 ASCII letters, digits, `.`, `_`,
//!   `-` or `@` ([`validate_username`]); a password has at least
//!   [`MIN_PASSWORD_LEN`] characters ([`check_password_policy`]). The CLI
//!   and the REST API both apply them; a refusal is a [`PolicyError`].
//!
//! Hashing a password costs about 64 MiB of memory and tens of
//! milliseconds of CPU: callers on an async runtime run [`hash_password`]
//! and [`verify_password`] in a blocking section (`web::block`).

use std::fmt;
use std::str::FromStr;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use sha2::{Digest, Sha256};

/// Argon2id memory cost in KiB (64 MiB).
pub const ARGON2_M_COST_KIB: u32 = 64 * 1024;
/// Argon2id number of passes.
pub const ARGON2_T_COST: u32 = 3;
/// Argon2id degree of parallelism (lanes).
pub const ARGON2_P_COST: u32 = 4;
/// Argon2id output length in bytes.
pub const ARGON2_OUTPUT_LEN: usize = 32;

/// Random bytes in a token (256 bits).
pub const TOKEN_BYTES: usize = 32;
/// Length of a token as text (hex of [`TOKEN_BYTES`]).
pub const TOKEN_LEN: usize = TOKEN_BYTES * 2;

/// Shortest password accepted for an account.
pub const MIN_PASSWORD_LEN: usize = 8;

/// Length of a password made by [`generate_password`].
pub const GENERATED_PASSWORD_LEN: usize = 24;
/// Characters of a generated password: letters and digits only, so it can
/// be pasted into a shell or a form without quoting.
const PASSWORD_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Every way an authentication primitive can fail.
///
/// A wrong password is not an error ([`verify_password`] returns
/// `Ok(false)`), and no variant carries a password, token or hash.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// [`hash_password`] was given an empty password.
    #[error("password must not be empty")]
    EmptyPassword,
    /// The argon2 computation itself failed.
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    /// A stored password hash is not a usable argon2 PHC string.
    #[error("stored password hash is malformed: {reason}")]
    MalformedHash {
        /// What is wrong with it (never the hash itself).
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
    /// A role name that is not one of [`Role::ALL`].
    #[error("unknown role {given:?}: expected one of admin, operator, viewer")]
    UnknownRole {
        /// The text that was given.
        given: String,
    },
}

/// A username or password the account rules refuse. The messages are
/// shown to the operator as they are (the CLI) or after the field name
/// (the REST API's 400 `validation_failed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The password is shorter than [`MIN_PASSWORD_LEN`] characters.
    #[error("the password must have at least {MIN_PASSWORD_LEN} characters")]
    PasswordTooShort,
    /// The username breaks [`validate_username`]'s rule.
    #[error("invalid username {given:?}: use 1-64 letters, digits, '.', '_', '-' or '@'")]
    InvalidUsername {
        /// The text that was given.
        given: String,
    },
}

/// Refuses passwords that are too short to protect an admin console.
pub fn check_password_policy(password: &str) -> Result<(), PolicyError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(PolicyError::PasswordTooShort);
    }
    Ok(())
}

/// Refuses usernames that are empty, longer than 64 bytes or hold other
/// characters than ASCII letters, digits, `.`, `_`, `-` and `@`.
pub fn validate_username(username: &str) -> Result<(), PolicyError> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !ok {
        return Err(PolicyError::InvalidUsername {
            given: username.to_owned(),
        });
    }
    Ok(())
}

/// The argon2id hasher with this server's parameters.
fn hasher() -> Result<Argon2<'static>, AuthError> {
    let params = Params::new(
        ARGON2_M_COST_KIB,
        ARGON2_T_COST,
        ARGON2_P_COST,
        Some(ARGON2_OUTPUT_LEN),
    )
    .map_err(|e| AuthError::Hash(e.into()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with argon2id (m = 65536 KiB, t = 3, p = 4, 32-byte
/// output) and a fresh random salt; returns the PHC string to store.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.is_empty() {
        return Err(AuthError::EmptyPassword);
    }
    let hash = hasher()?
        .hash_password(password.as_bytes())
        .map_err(AuthError::Hash)?;
    Ok(hash.to_string())
}

/// Checks `password` against a PHC string made by [`hash_password`].
///
/// Returns `Ok(false)` for a wrong password and an error only when `phc`
/// is not a usable argon2 hash (unparsable, no salt or output, not argon2,
/// invalid parameters). The parameters are taken from `phc` itself.
pub fn verify_password(password: &str, phc: &str) -> Result<bool, AuthError> {
    let malformed = |reason: String| AuthError::MalformedHash { reason };
    let parsed = PasswordHash::new(phc).map_err(|e| malformed(e.to_string()))?;
    if Algorithm::try_from(parsed.algorithm.as_str()).is_err() {
        return Err(malformed(format!(
            "algorithm {:?} is not argon2",
            parsed.algorithm.as_str()
        )));
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(malformed("salt or hash output missing".to_owned()));
    }
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(malformed(e.to_string())),
    }
}

/// Generates a new token: 256 random bits as 64 lower-case hex characters
/// (URL- and header-safe). Show it once; store only [`hash_token`] of it.
pub fn generate_token() -> Result<String, AuthError> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(AuthError::Random)?;
    let token = hex::encode(bytes);
    bytes.fill(0);
    Ok(token)
}

/// SHA-256 of `token`, as 64 lower-case hex characters: the only form of a
/// token that is stored and looked up. Deterministic, so a presented token
/// is found by an index lookup on its hash.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Generates a random password of [`GENERATED_PASSWORD_LEN`] letters and
/// digits (about 143 bits), e.g. for the first admin account.
pub fn generate_password() -> Result<String, AuthError> {
    // Rejection sampling keeps every character equally likely: bytes at or
    // above the largest multiple of the alphabet size are drawn again.
    let alphabet_len = PASSWORD_ALPHABET.len();
    let limit = 256 - 256 % alphabet_len;
    let mut password = String::with_capacity(GENERATED_PASSWORD_LEN);
    let mut buf = [0u8; 64];
    while password.len() < GENERATED_PASSWORD_LEN {
        getrandom::fill(&mut buf).map_err(AuthError::Random)?;
        for &b in &buf {
            if password.len() == GENERATED_PASSWORD_LEN {
                break;
            }
            let b = usize::from(b);
            if b < limit {
                if let Some(&c) = PASSWORD_ALPHABET.get(b % alphabet_len) {
                    password.push(char::from(c));
                }
            }
        }
    }
    buf.fill(0);
    Ok(password)
}

/// What a user may do. Ordered `Viewer < Operator < Admin`, and each role
/// may do everything the roles below it may, so `role >= Role::Operator`
/// reads as "at least operator".
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Also changes hosts, repositories, source groups and schedules, and
    /// runs or cancels jobs.
    Operator,
    /// Also manages users, enrolment and API tokens, and revokes hosts.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The stored and wire name: `"admin"`, `"operator"` or `"viewer"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// May read everything (every role).
    pub fn can_read(self) -> bool {
        self >= Role::Viewer
    }

    /// May change hosts, repositories, source groups and schedules, and
    /// run or cancel jobs (operator or admin).
    pub fn can_operate(self) -> bool {
        self >= Role::Operator
    }

    /// May manage users and tokens and revoke hosts (admin only).
    pub fn can_admin(self) -> bool {
        self >= Role::Admin
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;

    /// Parses a role name, ignoring ASCII case (`--role Admin` works).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| AuthError::UnknownRole {
                given: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Account rules: a short password or a bad username is refused with
    /// the message the CLI prints and the API shows after the field name.
    #[test]
    fn account_rules() {
        assert_eq!(
            check_password_policy("1234567").unwrap_err().to_string(),
            "the password must have at least 8 characters"
        );
        assert!(check_password_policy("12345678").is_ok());
        assert!(validate_username("ops.admin@site-1_a").is_ok());
        for bad in ["", "a b", "é", &"x".repeat(65)] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            validate_username("a b").unwrap_err().to_string(),
            "invalid username \"a b\": use 1-64 letters, digits, '.', '_', '-' or '@'"
        );
    }
    use std::collections::HashSet;

    /// The right password verifies against its own hash.
    #[test]
    fn hash_then_verify_right_password() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(verify_password("correct horse battery staple", &phc).unwrap());
    }

    /// A wrong password is Ok(false), not an error; so is a near miss.
    #[test]
    fn wrong_password_is_false() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(!verify_password("correct horse battery stapl", &phc).unwrap());
        assert!(!verify_password("", &phc).unwrap());
    }

    /// The PHC string records argon2id v19, m=65536,t=3,p=4, a 16-byte salt and a 32-byte output.
    #[test]
    fn phc_string_has_rfc9106_parameters() {
        let phc = hash_password("pw").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{phc}");
        let parsed = PasswordHash::new(&phc).unwrap();
        assert_eq!(parsed.params.get_decimal("m"), Some(65536));
        assert_eq!(parsed.params.get_decimal("t"), Some(3));
        assert_eq!(parsed.params.get_decimal("p"), Some(4));
        assert_eq!(parsed.hash.unwrap().len(), ARGON2_OUTPUT_LEN);
        assert_eq!(parsed.salt.unwrap().len(), 16);
    }

    /// Two hashes of one password differ (random salt) and both verify.
    #[test]
    fn same_password_hashes_differently() {
        let a = hash_password("same").unwrap();
        let b = hash_password("same").unwrap();
        assert_ne!(a, b);
        assert!(verify_password("same", &a).unwrap());
        assert!(verify_password("same", &b).unwrap());
    }

    /// A hash made with other (cheaper) argon2 parameters still verifies from its own PHC string.
    #[test]
    fn verifies_hash_with_other_parameters() {
        let params = Params::new(1024, 1, 1, Some(32)).unwrap();
        let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"legacy")
            .unwrap()
            .to_string();
        assert!(other.contains("m=1024,t=1,p=1"), "{other}");
        assert!(verify_password("legacy", &other).unwrap());
        assert!(!verify_password("nope", &other).unwrap());
    }

    /// Malformed stored hashes are an error naming the problem, never Ok(false) or a panic.
    #[test]
    fn malformed_hash_is_error() {
        let good = hash_password("pw").unwrap();
        let without_output = good.rsplit_once('$').unwrap().0.to_owned();
        let cases = [
            "".to_owned(),
            "not a hash".to_owned(),
            "$argon2id$".to_owned(),
            without_output,
            good.replace("$argon2id$", "$bcrypt$"),
            good.replace("m=65536", "m=abc"),
            good.replace("p=4", "p=0"),
        ];
        for case in &cases {
            match verify_password("pw", case) {
                Err(AuthError::MalformedHash { reason }) => assert!(!reason.is_empty()),
                other => panic!("{case:?}: expected MalformedHash, got {other:?}"),
            }
        }
    }

    /// An empty password is refused rather than hashed.
    #[test]
    fn empty_password_refused() {
        assert!(matches!(hash_password(""), Err(AuthError::EmptyPassword)));
    }

    /// Tokens are 64 lower-case hex characters (256 bits) and never repeat.
    #[test]
    fn tokens_are_256_bit_hex_and_unique() {
        let tokens: Vec<String> = (0..1000).map(|_| generate_token().unwrap()).collect();
        for t in &tokens {
            assert_eq!(t.len(), TOKEN_LEN);
            assert!(t
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            assert_eq!(hex::decode(t).unwrap().len(), TOKEN_BYTES);
        }
        let unique: HashSet<&String> = tokens.iter().collect();
        assert_eq!(unique.len(), tokens.len());
        // Every hex digit shows up across 64 000 random digits: the encoding
        // uses the full alphabet, not a constant or a narrow range.
        let digits: HashSet<char> = tokens.iter().flat_map(|t| t.chars()).collect();
        assert_eq!(digits.len(), 16);
    }

    /// hash_token is SHA-256 hex: known test vectors, deterministic, and not the token itself.
    #[test]
    fn hash_token_is_sha256_hex() {
        assert_eq!(
            hash_token(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let token = generate_token().unwrap();
        assert_eq!(hash_token(&token), hash_token(&token));
        assert_ne!(hash_token(&token), token);
        assert_eq!(hash_token(&token).len(), 64);
        assert_ne!(hash_token(&token), hash_token(&generate_token().unwrap()));
    }

    /// Generated passwords are 24 alphanumeric characters, unique, and hash/verify.
    #[test]
    fn generated_passwords() {
        let passwords: Vec<String> = (0..200).map(|_| generate_password().unwrap()).collect();
        for p in &passwords {
            assert_eq!(p.len(), GENERATED_PASSWORD_LEN);
            assert!(p.len() >= 20);
            assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()), "{p}");
        }
        let unique: HashSet<&String> = passwords.iter().collect();
        assert_eq!(unique.len(), passwords.len());
        let chars: HashSet<char> = passwords.iter().flat_map(|p| p.chars()).collect();
        assert!(
            chars.len() > 55,
            "only {} distinct characters in 4800",
            chars.len()
        );
        let phc = hash_password(&passwords[0]).unwrap();
        assert!(verify_password(&passwords[0], &phc).unwrap());
    }

    /// Role names parse (any ASCII case) and print back; unknown names list the valid roles.
    #[test]
    fn roles_parse_and_print() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(role.to_string(), role.as_str());
        }
        assert_eq!("Admin".parse::<Role>().unwrap(), Role::Admin);
        assert_eq!("OPERATOR".parse::<Role>().unwrap(), Role::Operator);
        let err = "root".parse::<Role>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown role \"root\": expected one of admin, operator, viewer"
        );
        assert!("".parse::<Role>().is_err());
        assert!(" admin".parse::<Role>().is_err());
    }

    /// Roles serialise to and from their lower-case names.
    #[test]
    fn roles_serde_lowercase() {
        assert_eq!(
            serde_json::to_string(&Role::Operator).unwrap(),
            "\"operator\""
        );
        let back: Role = serde_json::from_str("\"viewer\"").unwrap();
        assert_eq!(back, Role::Viewer);
        assert!(serde_json::from_str::<Role>("\"Admin\"").is_err());
    }

    /// Roles order viewer < operator < admin and permissions follow that order.
    #[test]
    fn role_order_and_permissions() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert!(Role::Admin >= Role::Operator);
        let table = [
            (Role::Viewer, true, false, false),
            (Role::Operator, true, true, false),
            (Role::Admin, true, true, true),
        ];
        for (role, read, operate, admin) in table {
            assert_eq!(role.can_read(), read, "{role} read");
            assert_eq!(role.can_operate(), operate, "{role} operate");
            assert_eq!(role.can_admin(), admin, "{role} admin");
        }
    }
}
