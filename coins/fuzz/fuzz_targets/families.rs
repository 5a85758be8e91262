// One representative network per family; the first input byte selects it.
pub const FAMILIES: &[(&str, &str)] = &[
    ("Bitcoin", "mainnet"),         // SegWit baseline
    ("BitcoinCash", "mainnet"),     // legacy
    ("Litecoin", "mainnet"),        // MWEB
    ("Dogecoin", "mainnet"),        // AuxPoW
    ("Namecoin", "mainnet"),        // AuxPoW + names
    ("Zcash", "mainnet"),           // Equihash / Zcash
    ("BitcoinGold", "mainnet"),     // Equihash + SegWit
    ("Groestlcoin", "mainnet"),     // Groestl
    ("Dash", "mainnet"),            // DIP2
    ("Peercoin", "mainnet"),        // time + SegWit
    ("Decred", "mainnet"),          // Decred
    ("FairCoin", "mainnet"),        // 108-byte header
    ("Xaya", "mainnet"),            // Xaya header
    ("Ravencoin", "mainnet"),       // scheduled header size
    ("PIVX", "mainnet"),            // PIVX Sapling
    ("Emercoin", "mainnet"),        // AuxPoW + time
    ("Primecoin", "mainnet"),       // multiplier header
    ("Zcoin", "mainnet"),           // MTP header, Sigma
    ("BitcoinAtom", "mainnet"),     // flag bytes
    ("BitcoinDiamond", "mainnet"),  // v12 prev-block hash
    ("Navcoin", "mainnet"),
    ("Trezarcoin", "mainnet"),
    ("Blackcoin", "mainnet"),
    ("Reddcoin", "mainnet"),
    ("Electra", "mainnet"),
    ("ECCoin", "mainnet"),
    ("Simplicity", "mainnet"),
    ("TokenPay", "mainnet"),
];

pub fn select(data: &[u8]) -> Option<(std::sync::Arc<dyn anode_coins::Coin>, &[u8])> {
    let (&sel, rest) = data.split_first()?;
    let (coin, net) = FAMILIES[sel as usize % FAMILIES.len()];
    Some((anode_coins::lookup(coin, net).ok()?, rest))
}
