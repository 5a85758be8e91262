//! Address encodings: Base58Check (with the coin's checksum hash), bech32/bech32m
//! segwit addresses, CashAddr.

use crate::hash::HashAlgo;
use crate::params::NetworkParams;
use crate::script::{self, Standard};
use crate::Error;

const B58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

pub(crate) fn base58_encode(data: &[u8]) -> String {
    let zeros = data.iter().take_while(|&&b| b == 0).count();
    let mut digits: Vec<u8> = Vec::with_capacity(data.len() * 138 / 100 + 1);
    for &byte in &data[zeros..] {
        let mut carry = byte as u32;
        for d in digits.iter_mut() {
            carry += (*d as u32) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut s = String::with_capacity(zeros + digits.len());
    s.extend(std::iter::repeat_n('1', zeros));
    s.extend(digits.iter().rev().map(|&d| B58[d as usize] as char));
    s
}

pub(crate) fn base58_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() > 200 {
        return None;
    }
    let zeros = s.bytes().take_while(|&c| c == b'1').count();
    let mut bytes: Vec<u8> = Vec::with_capacity(s.len());
    for c in s.bytes().skip(zeros) {
        let mut carry = B58.iter().position(|&x| x == c)? as u32;
        for b in bytes.iter_mut() {
            carry += (*b as u32) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let mut out = vec![0u8; zeros];
    out.extend(bytes.iter().rev());
    Some(out)
}

fn checksum(algo: HashAlgo, data: &[u8]) -> Result<[u8; 4], Error> {
    let h = algo.compute(data)?;
    Ok([h[0], h[1], h[2], h[3]])
}

pub(crate) fn base58check_encode(algo: HashAlgo, payload: &[u8]) -> Result<String, Error> {
    let mut v = payload.to_vec();
    v.extend_from_slice(&checksum(algo, payload)?);
    Ok(base58_encode(&v))
}

pub(crate) fn base58check_decode(algo: HashAlgo, s: &str) -> Result<Vec<u8>, Error> {
    let bad = || Error::Address(format!("{s:?}: not Base58Check"));
    let v = base58_decode(s).ok_or_else(bad)?;
    if v.len() < 5 {
        return Err(bad());
    }
    let (payload, sum) = v.split_at(v.len() - 4);
    if checksum(algo, payload)? != sum {
        return Err(Error::Address(format!("{s:?}: bad checksum")));
    }
    Ok(payload.to_vec())
}

// ---- bech32 / bech32m (BIP173, BIP350) ----

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const BECH32_CONST: u32 = 1;
const BECH32M_CONST: u32 = 0x2bc8_30a3;

fn bech32_polymod(values: &[u8]) -> u32 {
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut chk: u32 = 1;
    for &v in values {
        let b = chk >> 25;
        chk = ((chk & 0x1ff_ffff) << 5) ^ v as u32;
        for (i, g) in GEN.iter().enumerate() {
            if (b >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

fn hrp_expand(hrp: &str) -> Vec<u8> {
    let mut v: Vec<u8> = hrp.bytes().map(|c| c >> 5).collect();
    v.push(0);
    v.extend(hrp.bytes().map(|c| c & 31));
    v
}

fn convert_bits(data: &[u8], from: u32, to: u32, pad: bool) -> Option<Vec<u8>> {
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    let maxv = (1u32 << to) - 1;
    let mut out = Vec::with_capacity(data.len() * from as usize / to as usize + 1);
    for &v in data {
        if (v as u32) >> from != 0 {
            return None;
        }
        acc = (acc << from) | v as u32;
        bits += from;
        while bits >= to {
            bits -= to;
            out.push(((acc >> bits) & maxv) as u8);
        }
    }
    if pad {
        if bits > 0 {
            out.push(((acc << (to - bits)) & maxv) as u8);
        }
    } else if bits >= from || ((acc << (to - bits)) & maxv) != 0 {
        return None;
    }
    Some(out)
}

pub(crate) fn segwit_encode(hrp: &str, version: u8, program: &[u8]) -> Option<String> {
    let mut data = vec![version];
    data.extend(convert_bits(program, 8, 5, true)?);
    let constant = if version == 0 {
        BECH32_CONST
    } else {
        BECH32M_CONST
    };
    let mut values = hrp_expand(hrp);
    values.extend_from_slice(&data);
    values.extend_from_slice(&[0; 6]);
    let pm = bech32_polymod(&values) ^ constant;
    let mut s = String::from(hrp);
    s.push('1');
    for d in data {
        s.push(CHARSET[d as usize] as char);
    }
    for i in 0..6 {
        s.push(CHARSET[((pm >> (5 * (5 - i))) & 31) as usize] as char);
    }
    Some(s)
}

pub(crate) fn segwit_decode(hrp: &str, addr: &str) -> Option<(u8, Vec<u8>)> {
    if addr.len() > 90 {
        return None;
    }
    let lower = addr.to_ascii_lowercase();
    if lower != addr && addr.to_ascii_uppercase() != addr {
        return None;
    }
    let pos = lower.rfind('1')?;
    if &lower[..pos] != hrp || lower.len() < pos + 7 {
        return None;
    }
    let data: Vec<u8> = lower[pos + 1..]
        .bytes()
        .map(|c| CHARSET.iter().position(|&x| x == c).map(|p| p as u8))
        .collect::<Option<_>>()?;
    let mut values = hrp_expand(hrp);
    values.extend_from_slice(&data);
    let pm = bech32_polymod(&values);
    let (&version, rest) = data[..data.len() - 6].split_first()?;
    let expected = if version == 0 {
        BECH32_CONST
    } else {
        BECH32M_CONST
    };
    if pm != expected || version > 16 {
        return None;
    }
    let prog = convert_bits(rest, 5, 8, false)?;
    if prog.len() < 2 || prog.len() > 40 || (version == 0 && prog.len() != 20 && prog.len() != 32) {
        return None;
    }
    Some((version, prog))
}

// ---- CashAddr ----

fn cashaddr_polymod(values: &[u8]) -> u64 {
    const GEN: [u64; 5] = [
        0x98_f2bc_8e61,
        0x79_b76d_99e2,
        0xf3_3e5f_b3c4,
        0xae_2eab_e2a8,
        0x1e_4f43_e470,
    ];
    let mut c: u64 = 1;
    for &d in values {
        let c0 = (c >> 35) as u8;
        c = ((c & 0x07_ffff_ffff) << 5) ^ d as u64;
        for (i, g) in GEN.iter().enumerate() {
            if (c0 >> i) & 1 == 1 {
                c ^= g;
            }
        }
    }
    c ^ 1
}

fn cashaddr_prefix_values(prefix: &str) -> Vec<u8> {
    let mut v: Vec<u8> = prefix.bytes().map(|c| c & 31).collect();
    v.push(0);
    v
}

pub(crate) fn cashaddr_encode(prefix: &str, kind: u8, hash: &[u8]) -> Option<String> {
    let mut payload = vec![kind << 3];
    payload.extend_from_slice(hash);
    let data = convert_bits(&payload, 8, 5, true)?;
    let mut values = cashaddr_prefix_values(prefix);
    values.extend_from_slice(&data);
    values.extend_from_slice(&[0; 8]);
    let pm = cashaddr_polymod(&values);
    let mut s = format!("{prefix}:");
    for d in data {
        s.push(CHARSET[d as usize] as char);
    }
    for i in 0..8 {
        s.push(CHARSET[((pm >> (5 * (7 - i))) & 31) as usize] as char);
    }
    Some(s)
}

pub(crate) fn cashaddr_decode(prefix: &str, addr: &str) -> Option<(u8, Vec<u8>)> {
    if addr.len() > 120 {
        return None;
    }
    let lower = addr.to_ascii_lowercase();
    let body = match lower.split_once(':') {
        Some((p, b)) if p == prefix => b,
        Some(_) => return None,
        None => &lower,
    };
    let data: Vec<u8> = body
        .bytes()
        .map(|c| CHARSET.iter().position(|&x| x == c).map(|p| p as u8))
        .collect::<Option<_>>()?;
    if data.len() < 8 {
        return None;
    }
    let mut values = cashaddr_prefix_values(prefix);
    values.extend_from_slice(&data);
    if cashaddr_polymod(&values) != 0 {
        return None;
    }
    let payload = convert_bits(&data[..data.len() - 8], 5, 8, false)?;
    let (&version, hash) = payload.split_first()?;
    if version & 0x07 != 0 || hash.len() != 20 {
        return None;
    }
    Some((version >> 3, hash.to_vec()))
}

// ---- per network ----

pub(crate) fn address_to_script(p: &NetworkParams, addr: &str) -> Result<Vec<u8>, Error> {
    if let Some(hrp) = &p.bech32_hrp {
        if addr.to_ascii_lowercase().starts_with(&format!("{hrp}1")) {
            let (v, prog) = segwit_decode(hrp, addr)
                .ok_or_else(|| Error::Address(format!("{addr:?}: bad bech32 address")))?;
            let mut s = vec![if v == 0 { 0 } else { 0x50 + v }, prog.len() as u8];
            s.extend_from_slice(&prog);
            return Ok(s);
        }
    }
    if let Some(prefix) = &p.cashaddr_prefix {
        if let Some((kind, hash)) = cashaddr_decode(prefix, addr) {
            return match kind {
                0 => Ok(script::p2pkh(&hash)),
                1 => Ok(script::p2sh(&hash)),
                _ => Err(Error::Address(format!("{addr:?}: unknown CashAddr type"))),
            };
        }
    }
    let payload = base58check_decode(p.base58_checksum, addr)?;
    if payload.len() == p.p2pkh.len() + 20 && payload.starts_with(&p.p2pkh) {
        return Ok(script::p2pkh(&payload[p.p2pkh.len()..]));
    }
    for v in &p.p2sh {
        if payload.len() == v.len() + 20 && payload.starts_with(v) {
            return Ok(script::p2sh(&payload[v.len()..]));
        }
    }
    Err(Error::Address(format!(
        "{addr:?}: version bytes are not this network's ({})",
        p.id()
    )))
}

pub(crate) fn script_to_address(p: &NetworkParams, s: &[u8]) -> Option<String> {
    match script::classify(s)? {
        Standard::P2pkh(h) => {
            if let Some(prefix) = &p.cashaddr_prefix {
                return cashaddr_encode(prefix, 0, h);
            }
            let mut v = p.p2pkh.clone();
            v.extend_from_slice(h);
            base58check_encode(p.base58_checksum, &v).ok()
        }
        Standard::P2sh(h) => {
            if let Some(prefix) = &p.cashaddr_prefix {
                return cashaddr_encode(prefix, 1, h);
            }
            let mut v = p.p2sh.first()?.clone();
            v.extend_from_slice(h);
            base58check_encode(p.base58_checksum, &v).ok()
        }
        Standard::Witness(v, prog) => segwit_encode(p.bech32_hrp.as_deref()?, v, prog),
    }
}
