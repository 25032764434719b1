//! Public keys that verify JWT signatures: parsed from JWKS documents and from PEM (public
//! keys and certificates), verified with `ring`. RSA (PKCS#1 v1.5 and PSS), ECDSA P-256 and
//! P-384, Ed25519. The algorithm named by the token must fit the key's type; a key never
//! verifies with an algorithm of another family.

use base64::Engine;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

#[derive(Clone, PartialEq, Eq)]
enum Material {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed point (0x04 || x || y).
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: Option<String>,
    material: Material,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.material {
            Material::Rsa { .. } => "RSA",
            Material::P256(_) => "P-256",
            Material::P384(_) => "P-384",
            Material::Ed25519(_) => "Ed25519",
        };
        write!(f, "PublicKey({kind}, kid={:?})", self.kid)
    }
}

fn b64u(v: Option<&Value>, what: &str) -> Result<Vec<u8>, String> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| format!("JWK is missing \"{what}\""))?;
    airlock_core::jwt::b64url(s).map_err(|e| format!("JWK \"{what}\": {e}"))
}

fn strip_zeros(mut b: Vec<u8>) -> Vec<u8> {
    while b.len() > 1 && b[0] == 0 {
        b.remove(0);
    }
    b
}

impl PublicKey {
    /// One key of a JWKS `keys` array. Keys meant only for encryption (`use: enc`) and
    /// symmetric keys are refused.
    pub fn from_jwk(v: &Value) -> Result<PublicKey, String> {
        let kid = v.get("kid").and_then(Value::as_str).map(str::to_string);
        if v.get("use").and_then(Value::as_str) == Some("enc") {
            return Err("JWK is an encryption key".into());
        }
        let material = match v.get("kty").and_then(Value::as_str) {
            Some("RSA") => Material::Rsa {
                n: strip_zeros(b64u(v.get("n"), "n")?),
                e: strip_zeros(b64u(v.get("e"), "e")?),
            },
            Some("EC") => {
                let x = b64u(v.get("x"), "x")?;
                let y = b64u(v.get("y"), "y")?;
                let (len, curve) = match v.get("crv").and_then(Value::as_str) {
                    Some("P-256") => (32, 256),
                    Some("P-384") => (48, 384),
                    other => return Err(format!("unsupported EC curve {other:?}")),
                };
                if x.len() != len || y.len() != len {
                    return Err("EC JWK coordinates have the wrong length".into());
                }
                let mut p = Vec::with_capacity(1 + 2 * len);
                p.push(4);
                p.extend_from_slice(&x);
                p.extend_from_slice(&y);
                if curve == 256 {
                    Material::P256(p)
                } else {
                    Material::P384(p)
                }
            }
            Some("OKP") => {
                if v.get("crv").and_then(Value::as_str) != Some("Ed25519") {
                    return Err("unsupported OKP curve".into());
                }
                let x = b64u(v.get("x"), "x")?;
                if x.len() != 32 {
                    return Err("Ed25519 JWK has the wrong length".into());
                }
                Material::Ed25519(x)
            }
            other => return Err(format!("unsupported JWK key type {other:?}")),
        };
        Ok(PublicKey { kid, material })
    }

    /// Every usable key of a JWKS document; keys that cannot be used are skipped, and a
    /// document with none is an error.
    pub fn from_jwks(doc: &Value) -> Result<Vec<PublicKey>, String> {
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("JWKS document has no \"keys\" array")?;
        let out: Vec<PublicKey> = keys.iter().filter_map(|k| Self::from_jwk(k).ok()).collect();
        if out.is_empty() {
            return Err("JWKS document has no usable keys".into());
        }
        Ok(out)
    }

    /// `PUBLIC KEY` (SPKI), `RSA PUBLIC KEY` (PKCS#1) or `CERTIFICATE` blocks.
    pub fn from_pem(text: &str) -> Result<Vec<PublicKey>, String> {
        let blocks = pem_blocks(text)?;
        if blocks.is_empty() {
            return Err("no PEM block found".into());
        }
        let mut out = Vec::new();
        for (label, der) in blocks {
            let material = match label.as_str() {
                "PUBLIC KEY" => spki(&der)?,
                "RSA PUBLIC KEY" => rsa_pkcs1(&der)?,
                "CERTIFICATE" => spki(certificate_spki(&der)?)?,
                other => return Err(format!("unsupported PEM block \"{other}\"")),
            };
            out.push(PublicKey {
                kid: None,
                material,
            });
        }
        Ok(out)
    }

    /// Verifies `sig` over `msg` with the algorithm `alg`; false on any mismatch.
    pub fn verify(&self, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
        match (&self.material, alg) {
            (Material::Rsa { n, e }, _) => {
                let params: &signature::RsaParameters = match alg {
                    "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                    "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                };
                RsaPublicKeyComponents { n, e }
                    .verify(params, msg, sig)
                    .is_ok()
            }
            (Material::P256(p), "ES256") => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, p)
                    .verify(msg, sig)
                    .is_ok()
            }
            (Material::P384(p), "ES384") => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, p)
                    .verify(msg, sig)
                    .is_ok()
            }
            (Material::Ed25519(p), "EdDSA") => UnparsedPublicKey::new(&signature::ED25519, p)
                .verify(msg, sig)
                .is_ok(),
            _ => false,
        }
    }
}

/// Which keys may have signed a token: those with its `kid` when it names one that is known,
/// else all of them.
pub fn candidates<'a>(keys: &'a [PublicKey], kid: Option<&str>) -> Vec<&'a PublicKey> {
    if let Some(k) = kid {
        let m: Vec<&PublicKey> = keys
            .iter()
            .filter(|p| p.kid.as_deref() == Some(k))
            .collect();
        if !m.is_empty() {
            return m;
        }
    }
    keys.iter().collect()
}

/// True when some key verifies the token.
pub fn verify_any(keys: &[PublicKey], jws: &airlock_core::jwt::Jws) -> bool {
    candidates(keys, jws.kid())
        .iter()
        .any(|k| k.verify(jws.alg(), &jws.signing_input, &jws.signature))
}

/// True when `kid` names a key in `keys` (or the token has no kid).
pub fn knows_kid(keys: &[PublicKey], kid: Option<&str>) -> bool {
    match kid {
        None => true,
        Some(k) => keys.iter().any(|p| p.kid.as_deref() == Some(k)),
    }
}

/// `-----BEGIN X-----` blocks as (label, DER).
pub fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in text.lines() {
        let l = line.trim();
        if let Some(label) = l
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.strip_suffix("-----"))
        {
            cur = Some((label.to_string(), String::new()));
        } else if let Some(label) = l
            .strip_prefix("-----END ")
            .and_then(|r| r.strip_suffix("-----"))
        {
            let Some((open, body)) = cur.take() else {
                return Err("PEM END without BEGIN".into());
            };
            if open != label {
                return Err("PEM BEGIN/END labels differ".into());
            }
            let der = base64::engine::general_purpose::STANDARD
                .decode(body.as_bytes())
                .map_err(|_| format!("PEM block \"{label}\" is not valid base64"))?;
            out.push((open, der));
        } else if let Some((_, body)) = cur.as_mut() {
            if !l.contains(':') {
                body.push_str(l);
            }
        }
    }
    if cur.is_some() {
        return Err("PEM block is not terminated".into());
    }
    Ok(out)
}

/// A minimal DER reader: one TLV at a time.
struct Der<'a> {
    b: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(b: &'a [u8]) -> Self {
        Der { b }
    }
    fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    /// (tag, contents)
    fn next(&mut self) -> Result<(u8, &'a [u8]), String> {
        let bad = || "malformed DER".to_string();
        let tag = *self.b.first().ok_or_else(bad)?;
        let l0 = *self.b.get(1).ok_or_else(bad)?;
        let (len, hdr) = if l0 < 0x80 {
            (l0 as usize, 2)
        } else {
            let n = (l0 & 0x7f) as usize;
            if n == 0 || n > 4 {
                return Err(bad());
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | *self.b.get(2 + i).ok_or_else(bad)? as usize;
            }
            (len, 2 + n)
        };
        let end = hdr.checked_add(len).ok_or_else(bad)?;
        let body = self.b.get(hdr..end).ok_or_else(bad)?;
        self.b = &self.b[end..];
        Ok((tag, body))
    }
    fn tag(&mut self, tag: u8) -> Result<&'a [u8], String> {
        let (t, b) = self.next()?;
        if t != tag {
            return Err("unexpected DER structure".into());
        }
        Ok(b)
    }
}

const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

fn spki(der: &[u8]) -> Result<Material, String> {
    let mut outer = Der::new(der);
    let mut seq = Der::new(outer.tag(0x30)?);
    let mut alg = Der::new(seq.tag(0x30)?);
    let oid = alg.tag(0x06)?;
    let params = if alg.is_empty() {
        None
    } else {
        Some(alg.next()?)
    };
    let bits = seq.tag(0x03)?;
    let key = bits.get(1..).ok_or("malformed DER")?;
    if oid == OID_RSA {
        rsa_pkcs1(key)
    } else if oid == OID_EC {
        match params {
            Some((0x06, c)) if c == OID_P256 => Ok(Material::P256(key.to_vec())),
            Some((0x06, c)) if c == OID_P384 => Ok(Material::P384(key.to_vec())),
            _ => Err("unsupported EC curve".into()),
        }
    } else if oid == OID_ED25519 {
        Ok(Material::Ed25519(key.to_vec()))
    } else {
        Err("unsupported public key algorithm".into())
    }
}

fn rsa_pkcs1(der: &[u8]) -> Result<Material, String> {
    let mut outer = Der::new(der);
    let mut seq = Der::new(outer.tag(0x30)?);
    let n = strip_zeros(seq.tag(0x02)?.to_vec());
    let e = strip_zeros(seq.tag(0x02)?.to_vec());
    Ok(Material::Rsa { n, e })
}

/// The SubjectPublicKeyInfo (whole TLV) of an X.509 certificate.
fn certificate_spki(der: &[u8]) -> Result<&[u8], String> {
    let mut outer = Der::new(der);
    let mut cert = Der::new(outer.tag(0x30)?);
    let tbs_all = cert.b;
    let tbs = cert.tag(0x30)?;
    let _ = tbs_all;
    let mut t = Der::new(tbs);
    let (tag, _) = t.next()?; // version [0] or serial
    if tag == 0xa0 {
        t.tag(0x02)?; // serial
    }
    t.tag(0x30)?; // signature algorithm
    t.tag(0x30)?; // issuer
    t.tag(0x30)?; // validity
    t.tag(0x30)?; // subject
    let start = t.b;
    let body = t.tag(0x30)?;
    let hdr = start.len() - t.b.len() - body.len();
    start
        .get(..hdr + body.len())
        .ok_or_else(|| "malformed certificate".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn b64(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    #[test]
    fn ec_and_ed25519_jwks_verify_and_refuse_cross_algorithms() {
        let rng = SystemRandom::new();
        let pk8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap();
        let kp = EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            pk8.as_ref(),
            &rng,
        )
        .unwrap();
        let pt = kp.public_key().as_ref();
        let jwk = serde_json::json!({"kty":"EC","crv":"P-256","kid":"e1","x":b64(&pt[1..33]),"y":b64(&pt[33..])});
        let k = PublicKey::from_jwk(&jwk).unwrap();
        let sig = kp.sign(&rng, b"msg").unwrap();
        assert!(k.verify("ES256", b"msg", sig.as_ref()));
        assert!(!k.verify("ES256", b"msh", sig.as_ref()));
        assert!(!k.verify("ES384", b"msg", sig.as_ref()));
        assert!(!k.verify("RS256", b"msg", sig.as_ref()));
        assert!(!k.verify("HS256", b"msg", sig.as_ref()));

        let ed8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(ed8.as_ref()).unwrap();
        let jwk = serde_json::json!({"kty":"OKP","crv":"Ed25519","kid":"d1","x":b64(ed.public_key().as_ref())});
        let k2 = PublicKey::from_jwk(&jwk).unwrap();
        let s2 = ed.sign(b"m2");
        assert!(k2.verify("EdDSA", b"m2", s2.as_ref()));
        assert!(!k2.verify("ES256", b"m2", s2.as_ref()));
        let keys = vec![k.clone(), k2.clone()];
        assert_eq!(candidates(&keys, Some("d1")), vec![&k2]);
        assert_eq!(candidates(&keys, Some("zz")).len(), 2);
        assert!(knows_kid(&keys, Some("e1")) && !knows_kid(&keys, Some("zz")));
        assert!(format!("{k:?}").contains("P-256"));
    }

    #[test]
    fn every_rsa_padding_and_p384_verify() {
        let rng = SystemRandom::new();
        // The committed test-only RSA key (PKCS#8 PEM).
        let pem = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/compat/keys/test-only-rsa.key.pem"),
        )
        .unwrap();
        let der = pem_blocks(&pem).unwrap().remove(0).1;
        let kp = signature::RsaKeyPair::from_pkcs8(&der).unwrap();
        let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(kp.public());
        let jwk = serde_json::json!({"kty":"RSA","kid":"r","n":b64(&c.n),"e":b64(&c.e)});
        let k = PublicKey::from_jwk(&jwk).unwrap();
        let pad: [(&str, &'static dyn signature::RsaEncoding); 6] = [
            ("RS256", &signature::RSA_PKCS1_SHA256),
            ("RS384", &signature::RSA_PKCS1_SHA384),
            ("RS512", &signature::RSA_PKCS1_SHA512),
            ("PS256", &signature::RSA_PSS_SHA256),
            ("PS384", &signature::RSA_PSS_SHA384),
            ("PS512", &signature::RSA_PSS_SHA512),
        ];
        for (alg, enc) in pad {
            let mut sig = vec![0u8; kp.public().modulus_len()];
            kp.sign(enc, &rng, b"m", &mut sig).unwrap();
            assert!(k.verify(alg, b"m", &sig), "{alg}");
            assert!(!k.verify(alg, b"n", &sig), "{alg} wrong message");
            assert!(!k.verify("ES256", b"m", &sig), "{alg} as ES256");
        }
        // The same key from its PEM public key.
        let pub_pem = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/compat/keys/test-only-rsa.pub.pem"),
        )
        .unwrap();
        let from_pem = PublicKey::from_pem(&pub_pem).unwrap();
        let mut sig = vec![0u8; kp.public().modulus_len()];
        kp.sign(&signature::RSA_PKCS1_SHA256, &rng, b"m", &mut sig)
            .unwrap();
        assert!(from_pem[0].verify("RS256", b"m", &sig));

        let alg = &signature::ECDSA_P384_SHA384_FIXED_SIGNING;
        let p8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let ec = EcdsaKeyPair::from_pkcs8(alg, p8.as_ref(), &rng).unwrap();
        let pt = ec.public_key().as_ref();
        let jwk =
            serde_json::json!({"kty":"EC","crv":"P-384","x":b64(&pt[1..49]),"y":b64(&pt[49..])});
        let k = PublicKey::from_jwk(&jwk).unwrap();
        let sig = ec.sign(&rng, b"m").unwrap();
        assert!(k.verify("ES384", b"m", sig.as_ref()));
        assert!(!k.verify("ES256", b"m", sig.as_ref()));
    }

    #[test]
    fn certificate_public_keys() {
        let kp = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["keys-test".into()])
            .unwrap()
            .self_signed(&kp)
            .unwrap();
        let keys = PublicKey::from_pem(&cert.pem()).unwrap();
        assert_eq!(keys.len(), 1);
        let der = pem_blocks(&kp.serialize_pem()).unwrap().remove(0).1;
        let rng = SystemRandom::new();
        let kp = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .unwrap();
        let sig = kp.sign(&rng, b"cert").unwrap();
        assert!(keys[0].verify("ES256", b"cert", sig.as_ref()));
        assert!(!keys[0].verify("ES256", b"other", sig.as_ref()));
    }

    #[test]
    fn bad_jwks_are_refused() {
        for j in [
            serde_json::json!({"kty":"oct","k":"c2VjcmV0"}),
            serde_json::json!({"kty":"RSA","n":"AQAB"}),
            serde_json::json!({"kty":"EC","crv":"P-521","x":"AA","y":"AA"}),
            serde_json::json!({"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}),
        ] {
            assert!(PublicKey::from_jwk(&j).is_err(), "{j}");
        }
        assert!(PublicKey::from_jwks(&serde_json::json!({"keys": []})).is_err());
        assert!(PublicKey::from_jwks(&serde_json::json!({})).is_err());
    }

    #[test]
    fn pem_public_keys() {
        // An Ed25519 SPKI built by hand: SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }.
        let rng = SystemRandom::new();
        let ed8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(ed8.as_ref()).unwrap();
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(ed.public_key().as_ref());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&der)
        );
        let keys = PublicKey::from_pem(&pem).unwrap();
        assert!(keys[0].verify("EdDSA", b"x", ed.sign(b"x").as_ref()));
        assert!(PublicKey::from_pem("nothing").is_err());
        assert!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----")
                .is_err()
        );
        assert!(PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nMAA=\n").is_err());
        assert!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----")
                .is_err()
        );
    }
}
