//! Hash functions: SHA-256(d) always; the others behind cargo features.

use sha2::{Digest, Sha256};

use crate::{Error, Hash32};

/// SHA-256.
pub fn sha256(data: &[u8]) -> Hash32 {
    Sha256::digest(data).into()
}

/// SHA-256 applied twice.
pub fn sha256d(data: &[u8]) -> Hash32 {
    Sha256::digest(Sha256::digest(data)).into()
}

/// SHA-256d of the concatenation of `parts`, without copying them together.
pub fn sha256d_parts(parts: &[&[u8]]) -> Hash32 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Sha256::digest(h.finalize()).into()
}

/// Single SHA-256 of the concatenation of `parts`.
pub fn sha256_parts(parts: &[&[u8]]) -> Hash32 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// A block-hash (or checksum) algorithm, by its data-file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    /// `sha256d`
    Sha256d,
    /// `sha256`
    Sha256,
    /// `scrypt`: scrypt(N=1024, r=1, p=1), header as password and salt, 32 bytes.
    Scrypt,
    /// `groestl512d`: Groestl-512 twice, first 32 bytes.
    Groestl512d,
    /// `x11`
    X11,
    /// `blake256`: BLAKE-256 (14 rounds), once.
    Blake256,
    /// `blake256d`: BLAKE-256 twice (Decred address checksum).
    Blake256d,
    /// `keccak256`: original Keccak-256.
    Keccak256,
    /// `blake2s-trezarcoin`: keyed BLAKE2s-256 over header ‖ merkle root.
    Blake2sTrezarcoin,
    /// `quark`
    Quark,
    /// `x13`
    X13,
    /// `x16r`
    X16r,
    /// `x16rv2`
    X16rv2,
    /// `kawpow`
    Kawpow,
    /// `xevan`
    Xevan,
    /// `nist5`
    Nist5,
    /// `tribus`
    Tribus,
    /// `x11-gost`
    X11Gost,
    /// `yespower`
    Yespower,
    /// `genesis`: the network's genesis hash as a constant (EXOS's old headers).
    Genesis,
}

const NAMES: &[(&str, HashAlgo)] = &[
    ("sha256d", HashAlgo::Sha256d),
    ("sha256", HashAlgo::Sha256),
    ("scrypt", HashAlgo::Scrypt),
    ("groestl512d", HashAlgo::Groestl512d),
    ("x11", HashAlgo::X11),
    ("blake256", HashAlgo::Blake256),
    ("blake256d", HashAlgo::Blake256d),
    ("keccak256", HashAlgo::Keccak256),
    ("blake2s-trezarcoin", HashAlgo::Blake2sTrezarcoin),
    ("quark", HashAlgo::Quark),
    ("x13", HashAlgo::X13),
    ("x16r", HashAlgo::X16r),
    ("x16rv2", HashAlgo::X16rv2),
    ("kawpow", HashAlgo::Kawpow),
    ("xevan", HashAlgo::Xevan),
    ("nist5", HashAlgo::Nist5),
    ("tribus", HashAlgo::Tribus),
    ("x11-gost", HashAlgo::X11Gost),
    ("yespower", HashAlgo::Yespower),
    ("genesis", HashAlgo::Genesis),
];

impl HashAlgo {
    /// Parses a data-file name.
    pub fn from_name(s: &str) -> Option<HashAlgo> {
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|(_, a)| *a)
    }

    /// The data-file name.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, a)| *a == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// Whether this build can compute the algorithm.
    #[allow(clippy::match_like_matches_macro)]
    pub fn available(self) -> bool {
        match self {
            HashAlgo::Sha256d | HashAlgo::Sha256 | HashAlgo::Genesis => true,
            HashAlgo::Scrypt => cfg!(feature = "scrypt"),
            HashAlgo::Groestl512d => cfg!(feature = "groestl"),
            HashAlgo::Blake256 | HashAlgo::Blake256d => cfg!(feature = "decred"),
            HashAlgo::Keccak256 => cfg!(feature = "keccak"),
            HashAlgo::Blake2sTrezarcoin => cfg!(feature = "blake2s"),
            HashAlgo::X11 => cfg!(feature = "x11"),
            HashAlgo::Nist5 => cfg!(feature = "nist5"),
            HashAlgo::Quark => cfg!(feature = "quark"),
            _ => false,
        }
    }

    /// The cargo feature that provides the algorithm, if any.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            HashAlgo::Scrypt => Some("scrypt"),
            HashAlgo::Groestl512d => Some("groestl"),
            HashAlgo::Blake256 | HashAlgo::Blake256d => Some("decred"),
            HashAlgo::Keccak256 => Some("keccak"),
            HashAlgo::Blake2sTrezarcoin => Some("blake2s"),
            HashAlgo::X11 => Some("x11"),
            HashAlgo::Nist5 => Some("nist5"),
            HashAlgo::Quark => Some("quark"),
            _ => None,
        }
    }

    /// Computes the algorithm over `data`. [`HashAlgo::Genesis`] is handled by the
    /// caller (it needs the network) and is unavailable here.
    pub fn compute(self, data: &[u8]) -> Result<Hash32, Error> {
        match self {
            HashAlgo::Sha256d => Ok(sha256d(data)),
            HashAlgo::Sha256 => Ok(sha256(data)),
            #[cfg(feature = "scrypt")]
            HashAlgo::Scrypt => scrypt_1024(data),
            #[cfg(feature = "groestl")]
            HashAlgo::Groestl512d => Ok(groestl512d(data)),
            #[cfg(feature = "decred")]
            HashAlgo::Blake256 => Ok(blake256(data)),
            #[cfg(feature = "decred")]
            HashAlgo::Blake256d => Ok(blake256(&blake256(data))),
            #[cfg(feature = "keccak")]
            HashAlgo::Keccak256 => Ok(keccak256(data)),
            #[cfg(feature = "blake2s")]
            HashAlgo::Blake2sTrezarcoin => blake2s_trezarcoin(data),
            #[cfg(feature = "x11")]
            HashAlgo::X11 => x11(data),
            #[cfg(feature = "nist5")]
            HashAlgo::Nist5 => Ok(nist5(data)),
            #[cfg(feature = "quark")]
            HashAlgo::Quark => Ok(quark(data)),
            other => Err(Error::HashUnavailable(match other.feature() {
                Some(f) => format!("{} (cargo feature `{f}`)", other.name()),
                None => format!("{} (not implemented)", other.name()),
            })),
        }
    }
}

#[cfg(feature = "scrypt")]
fn scrypt_1024(data: &[u8]) -> Result<Hash32, Error> {
    let params =
        scrypt::Params::new(10, 1, 1, 32).map_err(|_| Error::HashUnavailable("scrypt".into()))?;
    let mut out = [0u8; 32];
    scrypt::scrypt(data, data, &params, &mut out)
        .map_err(|_| Error::HashUnavailable("scrypt".into()))?;
    Ok(out)
}

#[cfg(feature = "groestl")]
fn groestl512d(data: &[u8]) -> Hash32 {
    use groestl::Groestl512;
    let first = Groestl512::digest(data);
    let second = Groestl512::digest(first);
    let mut out = [0u8; 32];
    out.copy_from_slice(&second[..32]);
    out
}

/// BLAKE-256 (14 rounds), as Decred uses it.
#[cfg(feature = "decred")]
pub fn blake256(data: &[u8]) -> Hash32 {
    use blake_hash::Digest as _;
    let mut h = blake_hash::Blake256::new();
    h.update(data);
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finalize());
    out
}

/// Streaming BLAKE2b-256 with a 16-byte personalisation and no key (Zcash ZIP 244).
///
/// `blake2` 0.10 only exposes personalisation through its variable-output core (its MAC
/// wrapper would hash an all-zero key block even for an empty key), so the core is
/// driven directly with its own lazy block buffer.
pub(crate) struct PersonalBlake2b {
    core: blake2::Blake2bVarCore,
    buffer: blake2::digest::core_api::Buffer<blake2::Blake2bVarCore>,
}

impl PersonalBlake2b {
    pub(crate) fn new(personal: &[u8; 16]) -> Self {
        PersonalBlake2b {
            core: blake2::Blake2bVarCore::new_with_params(&[], personal, 0, 32),
            buffer: Default::default(),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        use blake2::digest::core_api::UpdateCore as _;
        let core = &mut self.core;
        self.buffer
            .digest_blocks(data, |blocks| core.update_blocks(blocks));
    }

    pub(crate) fn finalize(mut self) -> Hash32 {
        use blake2::digest::core_api::VariableOutputCore as _;
        let mut full = Default::default();
        self.core
            .finalize_variable_core(&mut self.buffer, &mut full);
        // The output length (32) is part of the parameter block; the core always
        // writes 64 bytes, of which the first 32 are the BLAKE2b-256 digest.
        let mut out = [0u8; 32];
        out.copy_from_slice(&full[..32]);
        out
    }
}

/// Personalised BLAKE2b-256 of the concatenation of `parts`.
pub(crate) fn blake2b_personal(personal: &[u8; 16], parts: &[&[u8]]) -> Hash32 {
    let mut h = PersonalBlake2b::new(personal);
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

#[cfg(feature = "keccak")]
fn keccak256(data: &[u8]) -> Hash32 {
    sha3::Keccak256::digest(data).into()
}

#[cfg(feature = "blake2s")]
fn blake2s_trezarcoin(header: &[u8]) -> Result<Hash32, Error> {
    use blake2::digest::{KeyInit, Mac};
    if header.len() < 80 {
        return Err(Error::Malformed {
            height: None,
            offset: header.len(),
            what: "Trezarcoin header shorter than 80 bytes",
        });
    }
    let mut key = Vec::with_capacity(32);
    key.extend_from_slice(&header[58..68]);
    key.extend_from_slice(&header[68..80]);
    key.extend_from_slice(&header[36..46]);
    let mut mac = <blake2::Blake2sMac256 as KeyInit>::new_from_slice(&key)
        .map_err(|_| Error::HashUnavailable("blake2s-trezarcoin".into()))?;
    mac.update(header);
    mac.update(&header[36..68]);
    Ok(mac.finalize().into_bytes().into())
}

/// X11 of an 80-byte header (the C implementation reads exactly 80 bytes, so any
/// other length is refused rather than passed on).
#[cfg(feature = "x11")]
fn x11(data: &[u8]) -> Result<Hash32, Error> {
    let header: [u8; 80] = data.try_into().map_err(|_| Error::Malformed {
        height: None,
        offset: data.len(),
        what: "X11 headers must be exactly 80 bytes",
    })?;
    Ok(rs_x11_hash::get_x11_hash(header))
}

/// NIST5: BLAKE-512, Groestl-512, JH-512, Keccak-512, Skein-512 chained; first 32 bytes.
#[cfg(feature = "nist5")]
fn nist5(data: &[u8]) -> Hash32 {
    use blake_hash::Digest as _;
    let mut b = blake_hash::Blake512::new();
    b.update(data);
    let h1 = b.finalize();
    let h2 = groestl::Groestl512::digest(h1.as_slice());
    let h3 = jh::Jh512::digest(h2);
    let h4 = sha3::Keccak512::digest(h3);
    let h5 = skein::Skein512::<skein::consts::U64>::digest(h4);
    let mut out = [0u8; 32];
    out.copy_from_slice(&h5[..32]);
    out
}

/// Quark: nine 512-bit rounds over BLAKE, BMW, Groestl, JH, Keccak and Skein, three of
/// them chosen by bit 3 of the previous digest's first byte; first 32 bytes.
#[cfg(feature = "quark")]
fn quark(data: &[u8]) -> Hash32 {
    type H = [u8; 64];
    fn fin(d: &[u8]) -> H {
        let mut h = [0u8; 64];
        h.copy_from_slice(&d[..64]);
        h
    }
    fn blake(d: &[u8]) -> H {
        use blake_hash::Digest as _;
        let mut b = blake_hash::Blake512::new();
        b.update(d);
        fin(&b.finalize())
    }
    fn bmw(d: &[u8]) -> H {
        fin(&<bmw_hash::Bmw512 as Digest>::digest(d))
    }
    fn groestl(d: &[u8]) -> H {
        fin(&groestl::Groestl512::digest(d))
    }
    fn jh(d: &[u8]) -> H {
        fin(&jh::Jh512::digest(d))
    }
    fn keccak(d: &[u8]) -> H {
        fin(&sha3::Keccak512::digest(d))
    }
    fn skein(d: &[u8]) -> H {
        fin(&skein::Skein512::<skein::consts::U64>::digest(d))
    }
    let odd = |h: &H| h[0] & 8 != 0;
    let h = blake(data);
    let h = bmw(&h);
    let h = if odd(&h) { groestl(&h) } else { skein(&h) };
    let h = groestl(&h);
    let h = jh(&h);
    let h = if odd(&h) { blake(&h) } else { bmw(&h) };
    let h = keccak(&h);
    let h = skein(&h);
    let h = if odd(&h) { keccak(&h) } else { jh(&h) };
    let mut out = [0u8; 32];
    out.copy_from_slice(&h[..32]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_blake2b_matches_an_independent_implementation() {
        // Expected values from Python's hashlib.blake2b(digest_size=32, person=...).
        let long = b"abc".repeat(100); // spans several 128-byte blocks
        assert_eq!(
            crate::hex_encode(&blake2b_personal(b"ZTxIdHeadersHash", &[&long])),
            "a36f070e92904ee1b0d6387415976c53e7b2d490ec57ae94641031e2eac5869c"
        );
        assert_eq!(
            crate::hex_encode(&blake2b_personal(b"ZTxIdOrchardHash", &[])),
            "9fbe4ed13b0c08e671c11a3407d84e1117cd45028a2eee1b9feae78b48a6e2c1"
        );
        // Split input gives the same digest as one slice.
        assert_eq!(
            blake2b_personal(
                b"ZTxIdHeadersHash",
                &[&long[..7], &long[7..200], &long[200..]]
            ),
            blake2b_personal(b"ZTxIdHeadersHash", &[&long])
        );
    }
}
