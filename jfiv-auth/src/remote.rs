//! The remote-access policy: where a peer may connect from, and the personal certificate a
//! remote user must present.
//!
//! PGSSI-S counts a VPN connection as remote access, which needs two factors of different kinds.
//! The certificate counts as a factor only if it is personal and revocable, so for a peer in the
//! VPN pool [`RemoteAccessPolicy::evaluate`] requires a client certificate that chains to the
//! hospital CA, is within its validity period, has the clientAuth extended key usage, is not
//! revoked according to a current CRL of its issuer, and names the same person as the login.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use sha2::{Digest, Sha256};
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};
use x509_parser::asn1_rs::{Any, FromDer, Tag};
use x509_parser::prelude::{GeneralName, X509Certificate};

use crate::{ConnectionContext, Error, Result};

/// DER content of the id-kp-clientAuth OID, 1.3.6.1.5.5.7.3.2.
const EKU_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
/// The Microsoft User Principal Name otherName OID, 1.3.6.1.4.1.311.20.2.3.
const OID_UPN: &str = "1.3.6.1.4.1.311.20.2.3";

/// Why a connection was refused before any password was checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The peer is neither on the hospital network nor in the VPN pool.
    #[error("address {ip} is neither on the hospital network nor in the VPN address pool")]
    OutsideAllowedNetworks {
        /// The peer's address.
        ip: IpAddr,
    },
    /// A remote peer presented no client certificate.
    #[error("remote access needs a personal client certificate and none was presented")]
    NoCertificate,
    /// The certificate could not be parsed.
    #[error("the client certificate is malformed ({detail})")]
    MalformedCertificate {
        /// The parser's message.
        detail: String,
    },
    /// The certificate does not chain to the configured CA.
    #[error("the client certificate is not issued by the hospital CA ({detail})")]
    Untrusted {
        /// The verifier's message.
        detail: String,
    },
    /// The certificate's validity period is over.
    #[error("the client certificate expired on {not_after}")]
    Expired {
        /// Its notAfter.
        not_after: DateTime<Utc>,
    },
    /// The certificate's validity period has not started.
    #[error("the client certificate is not valid before {not_before}")]
    NotYetValid {
        /// Its notBefore.
        not_before: DateTime<Utc>,
    },
    /// The certificate lacks the clientAuth extended key usage.
    #[error(
        "the client certificate is not for client authentication (no clientAuth extended key usage)"
    )]
    WrongUsage,
    /// The certificate is on its issuer's CRL.
    #[error("the client certificate has been revoked")]
    Revoked,
    /// No current CRL of the issuer is known, so the certificate cannot be shown not revoked.
    #[error("the revocation status of the client certificate is unknown ({detail})")]
    RevocationUnknown {
        /// Why.
        detail: String,
    },
    /// The certificate names another person than the one logging in.
    #[error(
        "the client certificate belongs to {}, not to the user {username:?}",
        who(.certificate_identity)
    )]
    IdentityMismatch {
        /// The identity found in the certificate (`None` when the configured field is absent).
        certificate_identity: Option<String>,
        /// The login name.
        username: String,
    },
}

fn who(identity: &Option<String>) -> String {
    match identity {
        Some(id) => format!("{id:?}"),
        None => "nobody named in the configured field".to_owned(),
    }
}

impl Refusal {
    /// A short kebab-case name for the audit trail and for tests.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::OutsideAllowedNetworks { .. } => "outside-allowed-networks",
            Refusal::NoCertificate => "no-certificate",
            Refusal::MalformedCertificate { .. } => "malformed-certificate",
            Refusal::Untrusted { .. } => "untrusted-certificate",
            Refusal::Expired { .. } => "certificate-expired",
            Refusal::NotYetValid { .. } => "certificate-not-yet-valid",
            Refusal::WrongUsage => "certificate-wrong-usage",
            Refusal::Revoked => "certificate-revoked",
            Refusal::RevocationUnknown { .. } => "revocation-status-unknown",
            Refusal::IdentityMismatch { .. } => "certificate-identity-mismatch",
        }
    }
}

/// Which field of the certificate names its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityField {
    /// The subject's common name must equal the user name (ignoring case).
    CommonName,
    /// A SAN e-mail address whose local part is the user name, in `domain` when given.
    SanEmail {
        /// The required domain (`hopital-lebois.fr`), if any.
        domain: Option<String>,
    },
    /// A SAN User Principal Name (`user@REALM`) whose user part is the user name, in `domain`
    /// when given.
    SanUpn {
        /// The required realm, if any.
        domain: Option<String>,
    },
}

/// How a peer was classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessClass {
    /// On the hospital network.
    Local,
    /// Through the VPN, with a verified personal certificate.
    Remote {
        /// SHA-256 (hex) of the certificate.
        fingerprint: String,
        /// The identity the certificate names.
        certificate_identity: String,
    },
}

/// The remote-access policy. Build it with [`RemoteAccessPolicy::builder`].
pub struct RemoteAccessPolicy {
    lan: Vec<IpNet>,
    vpn_pool: Vec<IpNet>,
    anchors: Vec<TrustAnchor<'static>>,
    crls: Vec<CertRevocationList<'static>>,
    identity: IdentityField,
}

impl fmt::Debug for RemoteAccessPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteAccessPolicy")
            .field("lan", &self.lan)
            .field("vpn_pool", &self.vpn_pool)
            .field("trust_anchors", &self.anchors.len())
            .field("crls", &self.crls.len())
            .field("identity", &self.identity)
            .finish()
    }
}

/// Builds a [`RemoteAccessPolicy`].
#[derive(Debug, Default)]
pub struct RemoteAccessPolicyBuilder {
    lan: Vec<IpNet>,
    vpn_pool: Vec<IpNet>,
    ca: Vec<CertificateDer<'static>>,
    crls: Vec<Vec<u8>>,
    identity: Option<IdentityField>,
}

fn config(what: &str, detail: impl Into<String>) -> Error {
    Error::Config {
        what: what.into(),
        detail: detail.into(),
    }
}

impl RemoteAccessPolicyBuilder {
    /// Adds a hospital LAN range (CIDR).
    pub fn lan(mut self, net: IpNet) -> Self {
        self.lan.push(net);
        self
    }

    /// Adds a VPN address pool range (CIDR).
    pub fn vpn_pool(mut self, net: IpNet) -> Self {
        self.vpn_pool.push(net);
        self
    }

    /// Adds a CA certificate (DER) that client certificates must chain to.
    pub fn ca_der(mut self, der: CertificateDer<'static>) -> Self {
        self.ca.push(der);
        self
    }

    /// Adds a CRL (DER) of a CA. Every CA issuing client certificates needs a current CRL.
    pub fn crl_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.crls.push(der.into());
        self
    }

    /// Sets which certificate field names the holder (default: the common name).
    pub fn identity(mut self, field: IdentityField) -> Self {
        self.identity = Some(field);
        self
    }

    /// Checks and builds the policy.
    ///
    /// # Errors
    /// [`Error::Config`] when a LAN range overlaps a VPN range, when a VPN pool is given without
    /// a CA or without a CRL (a certificate that cannot be revoked is not a factor), or when a
    /// CA or CRL does not parse.
    pub fn build(self) -> Result<RemoteAccessPolicy> {
        for lan in &self.lan {
            for vpn in &self.vpn_pool {
                if lan.contains(vpn) || vpn.contains(lan) {
                    return Err(config(
                        "remote-access policy",
                        format!("LAN range {lan} overlaps VPN pool {vpn}"),
                    ));
                }
            }
        }
        if !self.vpn_pool.is_empty() && self.ca.is_empty() {
            return Err(config(
                "remote-access policy",
                "a VPN pool needs the CA that issues client certificates",
            ));
        }
        if !self.vpn_pool.is_empty() && self.crls.is_empty() {
            return Err(config(
                "remote-access policy",
                "a VPN pool needs the CA's CRL: a certificate that cannot be revoked is not a factor",
            ));
        }
        let anchors = self
            .ca
            .iter()
            .map(|der| {
                webpki::anchor_from_trusted_cert(der)
                    .map(|a| a.to_owned())
                    .map_err(|e| config("CA certificate", format!("{e:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let crls = self
            .crls
            .iter()
            .map(|der| {
                OwnedCertRevocationList::from_der(der)
                    .map(CertRevocationList::Owned)
                    .map_err(|e| config("CRL", format!("{e:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RemoteAccessPolicy {
            lan: self.lan,
            vpn_pool: self.vpn_pool,
            anchors,
            crls,
            identity: self.identity.unwrap_or(IdentityField::CommonName),
        })
    }
}

/// SHA-256 of a DER certificate, in lower-case hex.
pub fn certificate_fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn unix_to_chrono(t: UnixTime) -> DateTime<Utc> {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl RemoteAccessPolicy {
    /// A builder with nothing allowed.
    pub fn builder() -> RemoteAccessPolicyBuilder {
        RemoteAccessPolicyBuilder::default()
    }

    /// Whether `ip` is in the VPN pool.
    pub fn is_remote(&self, ip: IpAddr) -> bool {
        self.vpn_pool.iter().any(|n| n.contains(&ip))
    }

    /// Whether `ip` is on the hospital LAN.
    pub fn is_local(&self, ip: IpAddr) -> bool {
        self.lan.iter().any(|n| n.contains(&ip))
    }

    /// Decides whether a login by `username` over `context` may go on to the password check, at
    /// time `now`. Pure: no I/O, no clock.
    ///
    /// # Errors
    /// The [`Refusal`] reason.
    pub fn evaluate(
        &self,
        context: &ConnectionContext,
        username: &str,
        now: DateTime<Utc>,
    ) -> std::result::Result<AccessClass, Refusal> {
        if self.is_local(context.peer) {
            return Ok(AccessClass::Local);
        }
        if !self.is_remote(context.peer) {
            return Err(Refusal::OutsideAllowedNetworks { ip: context.peer });
        }
        let Some((leaf, intermediates)) = context.client_chain.split_first() else {
            return Err(Refusal::NoCertificate);
        };
        self.verify_chain(leaf, intermediates, now)?;
        let certificate_identity = self.matching_identity(leaf, username)?;
        Ok(AccessClass::Remote {
            fingerprint: certificate_fingerprint(leaf),
            certificate_identity,
        })
    }

    fn verify_chain(
        &self,
        leaf: &CertificateDer<'static>,
        intermediates: &[CertificateDer<'static>],
        now: DateTime<Utc>,
    ) -> std::result::Result<(), Refusal> {
        let ee = EndEntityCert::try_from(leaf).map_err(|e| Refusal::MalformedCertificate {
            detail: format!("{e:?}"),
        })?;
        let crl_refs: Vec<&CertRevocationList<'_>> = self.crls.iter().collect();
        let revocation = RevocationOptionsBuilder::new(&crl_refs)
            .map_err(|_| Refusal::RevocationUnknown {
                detail: "no CRL configured".into(),
            })?
            .with_depth(RevocationCheckDepth::Chain)
            .with_status_policy(UnknownStatusPolicy::Deny)
            .with_expiration_policy(ExpirationPolicy::Enforce)
            .build();
        let secs = u64::try_from(now.timestamp()).unwrap_or(0);
        let time = UnixTime::since_unix_epoch(StdDuration::from_secs(secs));
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.anchors,
            intermediates,
            time,
            KeyUsage::required(EKU_CLIENT_AUTH),
            Some(revocation),
            None,
        )
        .map(|_| ())
        .map_err(|e| match e {
            webpki::Error::CertExpired { not_after, .. } => Refusal::Expired {
                not_after: unix_to_chrono(not_after),
            },
            webpki::Error::CertNotValidYet { not_before, .. } => Refusal::NotYetValid {
                not_before: unix_to_chrono(not_before),
            },
            webpki::Error::CertRevoked => Refusal::Revoked,
            webpki::Error::UnknownRevocationStatus => Refusal::RevocationUnknown {
                detail: "no CRL of the issuing CA".into(),
            },
            webpki::Error::CrlExpired { next_update, .. } => Refusal::RevocationUnknown {
                detail: format!("the CRL expired on {}", unix_to_chrono(next_update)),
            },
            webpki::Error::RequiredEkuNotFoundContext(_) | webpki::Error::EmptyEkuExtension => {
                Refusal::WrongUsage
            }
            webpki::Error::BadDer | webpki::Error::BadDerTime | webpki::Error::TrailingData(_) => {
                Refusal::MalformedCertificate {
                    detail: format!("{e:?}"),
                }
            }
            other => Refusal::Untrusted {
                detail: format!("{other:?}"),
            },
        })
    }

    /// The identity the certificate gives for the configured field, if it is `username`.
    fn matching_identity(
        &self,
        leaf: &CertificateDer<'static>,
        username: &str,
    ) -> std::result::Result<String, Refusal> {
        let malformed = |detail: String| Refusal::MalformedCertificate { detail };
        let (_, cert) =
            X509Certificate::from_der(leaf.as_ref()).map_err(|e| malformed(e.to_string()))?;
        let found = match &self.identity {
            IdentityField::CommonName => cert
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_owned)
                .into_iter()
                .collect::<Vec<_>>(),
            IdentityField::SanEmail { .. } | IdentityField::SanUpn { .. } => {
                let san = cert
                    .subject_alternative_name()
                    .map_err(|e| malformed(e.to_string()))?;
                let names = san
                    .map(|s| s.value.general_names.clone())
                    .unwrap_or_default();
                names
                    .iter()
                    .filter_map(|n| match (&self.identity, n) {
                        (IdentityField::SanEmail { .. }, GeneralName::RFC822Name(e)) => {
                            Some((*e).to_owned())
                        }
                        (IdentityField::SanUpn { .. }, GeneralName::OtherName(oid, value))
                            if oid.to_id_string() == OID_UPN =>
                        {
                            upn_value(value)
                        }
                        _ => None,
                    })
                    .collect()
            }
        };
        let matches = |candidate: &str| -> bool {
            match &self.identity {
                IdentityField::CommonName => candidate.eq_ignore_ascii_case(username),
                IdentityField::SanEmail { domain } | IdentityField::SanUpn { domain } => {
                    match candidate.rsplit_once('@') {
                        Some((user, dom)) => {
                            user.eq_ignore_ascii_case(username)
                                && domain
                                    .as_deref()
                                    .is_none_or(|d| d.eq_ignore_ascii_case(dom))
                        }
                        None => false,
                    }
                }
            }
        };
        match found.iter().find(|c| matches(c)) {
            Some(c) => Ok(c.clone()),
            None => Err(Refusal::IdentityMismatch {
                certificate_identity: found.first().cloned(),
                username: username.to_owned(),
            }),
        }
    }
}

/// The UTF8String inside the `[0] EXPLICIT` value of a UPN otherName.
fn upn_value(explicit: &[u8]) -> Option<String> {
    let (_, outer) = Any::from_der(explicit).ok()?;
    let (_, inner) = Any::from_der(outer.data).ok()?;
    if inner.tag() != Tag::Utf8String {
        return None;
    }
    std::str::from_utf8(inner.data).ok().map(str::to_owned)
}

#[cfg(test)]
pub(crate) mod testpki {
    //! A throwaway PKI built with rcgen for the tests.

    use rcgen::{
        BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
        ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams,
        SanType, SerialNumber, date_time_ymd,
    };
    use rustls_pki_types::CertificateDer;

    pub(crate) struct Ca {
        pub(crate) cert: rcgen::Certificate,
        key: KeyPair,
        next_serial: std::cell::Cell<u64>,
    }

    pub(crate) struct Leaf {
        pub(crate) der: CertificateDer<'static>,
        pub(crate) serial: u64,
    }

    #[derive(Default)]
    pub(crate) struct LeafSpec<'a> {
        pub(crate) cn: &'a str,
        pub(crate) email: Option<&'a str>,
        pub(crate) upn: Option<&'a str>,
        pub(crate) server_only: bool,
        pub(crate) not_after_year: Option<i32>,
    }

    impl Ca {
        pub(crate) fn new(name: &str) -> Ca {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            params.not_before = date_time_ymd(2025, 1, 1);
            params.not_after = date_time_ymd(2035, 1, 1);
            let cert = params.self_signed(&key).unwrap();
            Ca {
                cert,
                key,
                next_serial: std::cell::Cell::new(100),
            }
        }

        pub(crate) fn der(&self) -> CertificateDer<'static> {
            self.cert.der().clone()
        }

        pub(crate) fn issue(&self, spec: LeafSpec<'_>) -> Leaf {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, spec.cn);
            if let Some(e) = spec.email {
                params
                    .subject_alt_names
                    .push(SanType::Rfc822Name(e.try_into().unwrap()));
            }
            if let Some(u) = spec.upn {
                params.subject_alt_names.push(SanType::OtherName((
                    vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
                    u.into(),
                )));
            }
            params.extended_key_usages = vec![if spec.server_only {
                ExtendedKeyUsagePurpose::ServerAuth
            } else {
                ExtendedKeyUsagePurpose::ClientAuth
            }];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.not_before = date_time_ymd(2026, 1, 1);
            params.not_after = date_time_ymd(spec.not_after_year.unwrap_or(2027), 1, 1);
            let serial = self.next_serial.get();
            self.next_serial.set(serial + 1);
            params.serial_number = Some(SerialNumber::from(serial));
            let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
            Leaf {
                der: cert.der().clone(),
                serial,
            }
        }

        /// A CRL issued 2025-06-01, next update on January 1st of `next_update_year`, revoking
        /// `serials`.
        pub(crate) fn crl(&self, serials: &[u64], next_update_year: i32) -> Vec<u8> {
            let params = CertificateRevocationListParams {
                this_update: date_time_ymd(2025, 6, 1),
                next_update: date_time_ymd(next_update_year, 1, 1),
                crl_number: SerialNumber::from(1u64),
                issuing_distribution_point: None,
                revoked_certs: serials
                    .iter()
                    .map(|&s| RevokedCertParams {
                        serial_number: SerialNumber::from(s),
                        revocation_time: date_time_ymd(2026, 2, 1),
                        reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: KeyIdMethod::Sha256,
            };
            params
                .signed_by(&self.cert, &self.key)
                .unwrap()
                .der()
                .to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testpki::{self, Ca, LeafSpec};
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn now() -> DateTime<Utc> {
        at("2026-06-01T10:00:00Z")
    }

    struct World {
        ca: Ca,
        policy: RemoteAccessPolicy,
        revoked: testpki::Leaf,
    }

    fn world(identity: IdentityField) -> World {
        let ca = Ca::new("Hopital Le Bois VPN CA");
        let revoked = ca.issue(LeafSpec {
            cn: "dr.revoked",
            ..Default::default()
        });
        let policy = RemoteAccessPolicy::builder()
            .lan("10.1.0.0/16".parse().unwrap())
            .vpn_pool("10.8.0.0/24".parse().unwrap())
            .ca_der(ca.der())
            .crl_der(ca.crl(&[revoked.serial], 2027))
            .identity(identity)
            .build()
            .unwrap();
        World {
            ca,
            policy,
            revoked,
        }
    }

    fn vpn(chain: Vec<CertificateDer<'static>>) -> ConnectionContext {
        ConnectionContext::new("10.8.0.12".parse().unwrap()).with_client_chain(chain)
    }

    #[test]
    fn lan_peer_needs_no_certificate() {
        let w = world(IdentityField::CommonName);
        let ctx = ConnectionContext::new("10.1.4.20".parse().unwrap());
        assert_eq!(
            w.policy.evaluate(&ctx, "secr.dupont", now()),
            Ok(AccessClass::Local)
        );
    }

    #[test]
    fn outside_both_ranges_is_refused_even_with_a_good_certificate() {
        let w = world(IdentityField::CommonName);
        let leaf = w.ca.issue(LeafSpec {
            cn: "dr.martin",
            ..Default::default()
        });
        let ctx = ConnectionContext::new("203.0.113.5".parse().unwrap())
            .with_client_chain(vec![leaf.der]);
        assert_eq!(
            w.policy.evaluate(&ctx, "dr.martin", now()),
            Err(Refusal::OutsideAllowedNetworks {
                ip: "203.0.113.5".parse().unwrap()
            })
        );
    }

    #[test]
    fn personal_certificate_through_the_vpn_is_accepted() {
        let w = world(IdentityField::CommonName);
        let leaf = w.ca.issue(LeafSpec {
            cn: "dr.martin",
            ..Default::default()
        });
        let fp = certificate_fingerprint(&leaf.der);
        assert_eq!(fp.len(), 64);
        assert_eq!(
            w.policy.evaluate(&vpn(vec![leaf.der]), "DR.MARTIN", now()),
            Ok(AccessClass::Remote {
                fingerprint: fp,
                certificate_identity: "dr.martin".into()
            })
        );
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let w = world(IdentityField::CommonName);
        let good = w.ca.issue(LeafSpec {
            cn: "dr.martin",
            ..Default::default()
        });
        let colleague = w.ca.issue(LeafSpec {
            cn: "dr.bernard",
            ..Default::default()
        });
        let server = w.ca.issue(LeafSpec {
            cn: "dr.martin",
            server_only: true,
            ..Default::default()
        });
        let other_ca = Ca::new("Some other CA");
        let foreign = other_ca.issue(LeafSpec {
            cn: "dr.martin",
            ..Default::default()
        });
        let p = &w.policy;
        let code = |ctx: ConnectionContext, user: &str, t: DateTime<Utc>| {
            p.evaluate(&ctx, user, t).unwrap_err().code()
        };
        assert_eq!(code(vpn(vec![]), "dr.martin", now()), "no-certificate");
        assert_eq!(
            code(vpn(vec![colleague.der.clone()]), "dr.martin", now()),
            "certificate-identity-mismatch"
        );
        assert_eq!(
            code(vpn(vec![server.der]), "dr.martin", now()),
            "certificate-wrong-usage"
        );
        assert_eq!(
            code(vpn(vec![foreign.der]), "dr.martin", now()),
            "untrusted-certificate"
        );
        assert_eq!(
            code(
                vpn(vec![good.der.clone()]),
                "dr.martin",
                at("2027-02-01T00:00:00Z")
            ),
            "certificate-expired"
        );
        assert_eq!(
            code(
                vpn(vec![good.der.clone()]),
                "dr.martin",
                at("2025-12-01T00:00:00Z")
            ),
            "certificate-not-yet-valid"
        );
        assert_eq!(
            code(
                vpn(vec![CertificateDer::from(vec![
                    0x30, 0x03, 0x02, 0x01, 0x01
                ])]),
                "dr.martin",
                now()
            ),
            "malformed-certificate"
        );
        // The mismatch names both sides, for the audit trail.
        let err = p
            .evaluate(&vpn(vec![colleague.der]), "dr.martin", now())
            .unwrap_err();
        assert_eq!(
            err,
            Refusal::IdentityMismatch {
                certificate_identity: Some("dr.bernard".into()),
                username: "dr.martin".into()
            }
        );
    }

    #[test]
    fn revoked_certificate_is_refused() {
        let w = world(IdentityField::CommonName);
        assert_eq!(
            w.policy
                .evaluate(&vpn(vec![w.revoked.der.clone()]), "dr.revoked", now()),
            Err(Refusal::Revoked)
        );
        // The same certificate is fine under a CRL that does not list it: the refusal comes
        // from the CRL, not from something else about the certificate.
        let lenient = RemoteAccessPolicy::builder()
            .vpn_pool("10.8.0.0/24".parse().unwrap())
            .ca_der(w.ca.der())
            .crl_der(w.ca.crl(&[], 2027))
            .build()
            .unwrap();
        assert!(
            lenient
                .evaluate(&vpn(vec![w.revoked.der]), "dr.revoked", now())
                .is_ok()
        );
    }

    #[test]
    fn expired_crl_or_crl_of_another_ca_means_unknown_status() {
        let ca = Ca::new("VPN CA");
        let other = Ca::new("Other CA");
        let leaf = ca.issue(LeafSpec {
            cn: "dr.martin",
            ..Default::default()
        });
        let stale = RemoteAccessPolicy::builder()
            .vpn_pool("10.8.0.0/24".parse().unwrap())
            .ca_der(ca.der())
            .crl_der(ca.crl(&[], 2026)) // next update 2026-01-01: expired by June
            .build()
            .unwrap();
        assert_eq!(
            stale
                .evaluate(&vpn(vec![leaf.der.clone()]), "dr.martin", now())
                .unwrap_err()
                .code(),
            "revocation-status-unknown"
        );
        let wrong_issuer = RemoteAccessPolicy::builder()
            .vpn_pool("10.8.0.0/24".parse().unwrap())
            .ca_der(ca.der())
            .crl_der(other.crl(&[], 2027))
            .build()
            .unwrap();
        assert_eq!(
            wrong_issuer
                .evaluate(&vpn(vec![leaf.der]), "dr.martin", now())
                .unwrap_err()
                .code(),
            "revocation-status-unknown"
        );
    }

    #[test]
    fn san_email_and_upn_identities() {
        let w = world(IdentityField::SanEmail {
            domain: Some("hopital-lebois.fr".into()),
        });
        let leaf = w.ca.issue(LeafSpec {
            cn: "Dr Anne Martin",
            email: Some("a.martin@hopital-lebois.fr"),
            ..Default::default()
        });
        let elsewhere = w.ca.issue(LeafSpec {
            cn: "Dr Anne Martin",
            email: Some("a.martin@gmail.com"),
            ..Default::default()
        });
        assert!(matches!(
            w.policy.evaluate(&vpn(vec![leaf.der]), "a.martin", now()),
            Ok(AccessClass::Remote { certificate_identity, .. }) if certificate_identity == "a.martin@hopital-lebois.fr"
        ));
        assert_eq!(
            w.policy
                .evaluate(&vpn(vec![elsewhere.der]), "a.martin", now())
                .unwrap_err()
                .code(),
            "certificate-identity-mismatch"
        );

        let w = world(IdentityField::SanUpn { domain: None });
        let leaf = w.ca.issue(LeafSpec {
            cn: "Dr Anne Martin",
            upn: Some("a.martin@LEBOIS.LOCAL"),
            ..Default::default()
        });
        let no_upn = w.ca.issue(LeafSpec {
            cn: "a.martin",
            ..Default::default()
        });
        assert!(matches!(
            w.policy.evaluate(&vpn(vec![leaf.der]), "a.martin", now()),
            Ok(AccessClass::Remote { certificate_identity, .. }) if certificate_identity == "a.martin@LEBOIS.LOCAL"
        ));
        assert_eq!(
            w.policy.evaluate(&vpn(vec![no_upn.der]), "a.martin", now()),
            Err(Refusal::IdentityMismatch {
                certificate_identity: None,
                username: "a.martin".into()
            })
        );
    }

    #[test]
    fn builder_refuses_unsafe_configurations() {
        let ca = Ca::new("CA");
        let overlap = RemoteAccessPolicy::builder()
            .lan("10.0.0.0/8".parse().unwrap())
            .vpn_pool("10.8.0.0/24".parse().unwrap())
            .ca_der(ca.der())
            .crl_der(ca.crl(&[], 2027))
            .build();
        assert!(matches!(overlap, Err(Error::Config { .. })));
        let no_crl = RemoteAccessPolicy::builder()
            .vpn_pool("10.8.0.0/24".parse().unwrap())
            .ca_der(ca.der())
            .build();
        assert!(no_crl.unwrap_err().to_string().contains("CRL"));
        let no_ca = RemoteAccessPolicy::builder()
            .vpn_pool("10.8.0.0/24".parse().unwrap())
            .crl_der(ca.crl(&[], 2027))
            .build();
        assert!(matches!(no_ca, Err(Error::Config { .. })));
        let bad_crl = RemoteAccessPolicy::builder()
            .vpn_pool("10.8.0.0/24".parse().unwrap())
            .ca_der(ca.der())
            .crl_der(vec![1, 2, 3])
            .build();
        assert!(matches!(bad_crl, Err(Error::Config { .. })));
        // LAN only: no CA needed.
        RemoteAccessPolicy::builder()
            .lan("10.1.0.0/16".parse().unwrap())
            .build()
            .unwrap();
    }
}
