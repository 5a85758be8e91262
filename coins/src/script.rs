//! Script helpers: unspendable outputs, name-operation prefixes, standard templates.

use crate::params::NameIndex;

pub(crate) const OP_0: u8 = 0x00;
pub(crate) const OP_PUSHDATA1: u8 = 0x4c;
pub(crate) const OP_PUSHDATA2: u8 = 0x4d;
pub(crate) const OP_PUSHDATA4: u8 = 0x4e;
pub(crate) const OP_RETURN: u8 = 0x6a;
pub(crate) const OP_DROP: u8 = 0x75;
pub(crate) const OP_2DROP: u8 = 0x6d;
pub(crate) const OP_DUP: u8 = 0x76;
pub(crate) const OP_HASH160: u8 = 0xa9;
pub(crate) const OP_EQUAL: u8 = 0x87;
pub(crate) const OP_EQUALVERIFY: u8 = 0x88;
pub(crate) const OP_CHECKSIG: u8 = 0xac;

/// ElectrumX's rule: before the Bitcoin SV Genesis activation any script starting
/// with `OP_RETURN` or `OP_FALSE OP_RETURN` is unspendable; after it only the latter.
pub(crate) fn is_unspendable(script: &[u8], height: u32, genesis_activation: Option<u32>) -> bool {
    let false_return = script.len() >= 2 && script[0] == OP_0 && script[1] == OP_RETURN;
    match genesis_activation {
        Some(h) if height >= h => false_return,
        _ => script.first() == Some(&OP_RETURN) || false_return,
    }
}

/// One parsed script element: an opcode, with its pushed data for push opcodes.
pub(crate) struct Op<'a> {
    pub opcode: u8,
    pub data: Option<&'a [u8]>,
}

/// Reads the element at `pos`; `None` when the script is truncated.
pub(crate) fn next_op(script: &[u8], pos: usize) -> Option<(Op<'_>, usize)> {
    let opcode = *script.get(pos)?;
    let mut p = pos + 1;
    let len = match opcode {
        1..=0x4b => opcode as usize,
        OP_PUSHDATA1 => {
            let n = *script.get(p)? as usize;
            p += 1;
            n
        }
        OP_PUSHDATA2 => {
            let b = script.get(p..p + 2)?;
            p += 2;
            u16::from_le_bytes([b[0], b[1]]) as usize
        }
        OP_PUSHDATA4 => {
            let b = script.get(p..p + 4)?;
            p += 4;
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
        }
        _ => return Some((Op { opcode, data: None }, p)),
    };
    let data = script.get(p..p.checked_add(len)?)?;
    Some((
        Op {
            opcode,
            data: Some(data),
        },
        p + len,
    ))
}

fn is_push(op: &Op<'_>) -> bool {
    op.data.is_some()
        || op.opcode == OP_0
        || (0x51..=0x60).contains(&op.opcode)
        || op.opcode == 0x4f
}

/// A name operation at the start of a script: `OP_1..OP_3`, pushes, then drops that
/// remove exactly what was pushed. Returns (operation number, pushed items, prefix
/// length).
pub(crate) fn name_prefix(script: &[u8]) -> Option<(u8, Vec<&[u8]>, usize)> {
    let first = *script.first()?;
    if !(0x51..=0x53).contains(&first) {
        return None;
    }
    let mut items = Vec::new();
    let mut end = segment(script, 1, 1, &mut items)?;
    // Emercoin writes several push/drop groups in a row (`OP_3 OP_DROP <name> OP_DROP`);
    // take further groups while they balance.
    loop {
        let mut more = Vec::new();
        match segment(script, end, 0, &mut more) {
            Some(next) if !more.is_empty() => {
                items.extend(more);
                end = next;
            }
            _ => break,
        }
    }
    if items.is_empty() {
        return None;
    }
    Some((first - 0x50, items, end))
}

/// From `pos` with `depth` items already pushed: pushes raise the depth, OP_DROP /
/// OP_2DROP lower it; returns the position where it is back at zero.
fn segment<'a>(
    script: &'a [u8],
    mut pos: usize,
    mut depth: usize,
    items: &mut Vec<&'a [u8]>,
) -> Option<usize> {
    let mut dropped = false;
    while depth > 0 || !dropped {
        let (op, next) = next_op(script, pos)?;
        match op.opcode {
            OP_2DROP => {
                depth = depth.checked_sub(2)?;
                dropped = true;
            }
            OP_DROP => {
                depth = depth.checked_sub(1)?;
                dropped = true;
            }
            _ if is_push(&op) && !dropped => {
                items.push(op.data.unwrap_or(&[]));
                depth += 1;
            }
            _ => return None,
        }
        pos = next;
    }
    Some(pos)
}

/// The script after removing a name prefix (or the whole script).
pub(crate) fn strip_name_prefix(script: &[u8], kind: NameIndex) -> &[u8] {
    if kind == NameIndex::None {
        return script;
    }
    match name_prefix(script) {
        Some((_, _, len)) => &script[len..],
        None => script,
    }
}

/// `OP_NAME_UPDATE <name> <empty push> OP_2DROP OP_DROP OP_RETURN` for operations that
/// reveal a name.
pub(crate) fn name_index_script(script: &[u8], kind: NameIndex) -> Option<Vec<u8>> {
    let (op, items, _) = name_prefix(script)?;
    let (update_op, reveals) = match kind {
        // name_new (OP_1) only commits to a hash.
        NameIndex::Namecoin => (0x53, op == 2 || op == 3),
        NameIndex::Xaya => (0x52, op == 1 || op == 2),
        _ => return None,
    };
    if !reveals {
        return None;
    }
    let name = items.first()?;
    let mut out = vec![update_op];
    push_data(&mut out, name);
    out.push(OP_0);
    out.extend_from_slice(&[OP_2DROP, OP_DROP, OP_RETURN]);
    Some(out)
}

/// Appends a minimal data push.
pub(crate) fn push_data(out: &mut Vec<u8>, data: &[u8]) {
    let n = data.len();
    if n < OP_PUSHDATA1 as usize {
        out.push(n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[OP_PUSHDATA1, n as u8]);
    } else if n <= 0xffff {
        out.push(OP_PUSHDATA2);
        out.extend_from_slice(&(n as u16).to_le_bytes());
    } else {
        out.push(OP_PUSHDATA4);
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    out.extend_from_slice(data);
}

pub(crate) fn p2pkh(hash160: &[u8]) -> Vec<u8> {
    let mut s = vec![OP_DUP, OP_HASH160, 20];
    s.extend_from_slice(hash160);
    s.extend_from_slice(&[OP_EQUALVERIFY, OP_CHECKSIG]);
    s
}

pub(crate) fn p2sh(hash160: &[u8]) -> Vec<u8> {
    let mut s = vec![OP_HASH160, 20];
    s.extend_from_slice(hash160);
    s.push(OP_EQUAL);
    s
}

/// Recognised standard scripts.
pub(crate) enum Standard<'a> {
    P2pkh(&'a [u8]),
    P2sh(&'a [u8]),
    Witness(u8, &'a [u8]),
}

pub(crate) fn classify(s: &[u8]) -> Option<Standard<'_>> {
    if s.len() == 25
        && s[0] == OP_DUP
        && s[1] == OP_HASH160
        && s[2] == 20
        && s[23] == OP_EQUALVERIFY
        && s[24] == OP_CHECKSIG
    {
        return Some(Standard::P2pkh(&s[3..23]));
    }
    if s.len() == 23 && s[0] == OP_HASH160 && s[1] == 20 && s[22] == OP_EQUAL {
        return Some(Standard::P2sh(&s[2..22]));
    }
    if (4..=42).contains(&s.len())
        && (s[0] == OP_0 || (0x51..=0x60).contains(&s[0]))
        && s[1] as usize == s.len() - 2
        && (2..=40).contains(&(s[1] as usize))
    {
        let v = if s[0] == OP_0 { 0 } else { s[0] - 0x50 };
        return Some(Standard::Witness(v, &s[2..]));
    }
    None
}
