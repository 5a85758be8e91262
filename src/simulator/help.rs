//! The simulator's command table: for every Bitcoin Core 31 command it answers, Core's
//! category and argument list. From it come `help` (Core's format: the commands by category
//! in one string, or one command's text), the argument-count check (Core answers a call with
//! too few or too many arguments with the command's help text as a -1 error) and named
//! parameters (a JSON object instead of an array, as Core accepts).

use serde_json::{Map, Value};

use super::rpc::RpcError;

/// One argument of a command.
pub(crate) struct Arg {
    name: &'static str,
    /// Core's type word: `string`, `numeric`, `boolean`, `json array`, `json object`...
    kind: &'static str,
    required: bool,
    /// what an omitted optional argument means
    default: &'static str,
    about: &'static str,
    /// for an options object: the members that may also be given as named parameters
    named_only: &'static [&'static str],
}

/// A command the simulator answers as Bitcoin Core 31 does.
pub(crate) struct Command {
    pub(crate) name: &'static str,
    category: &'static str,
    /// the first line of Core's help: the name and the argument synopsis
    usage: &'static str,
    about: &'static str,
    args: &'static [Arg],
}

const fn required(name: &'static str, kind: &'static str, about: &'static str) -> Arg {
    Arg {
        name,
        kind,
        required: true,
        default: "",
        about,
        named_only: &[],
    }
}

const fn optional(
    name: &'static str,
    kind: &'static str,
    default: &'static str,
    about: &'static str,
) -> Arg {
    Arg {
        name,
        kind,
        required: false,
        default,
        about,
        named_only: &[],
    }
}

/// The commands, in Core's categories. Descriptions are the simulator's own.
pub(crate) const COMMANDS: &[Command] = &[
    Command {
        name: "getbestblockhash",
        category: "blockchain",
        usage: "getbestblockhash",
        about: "The hash of the tip of the active chain, hex.",
        args: &[],
    },
    Command {
        name: "getblock",
        category: "blockchain",
        usage: "getblock \"blockhash\" ( verbosity )",
        about: "A block: 0 gives its serialization as hex, 1 a JSON object with the txids, 2 with\n\
                the transactions decoded and their fees, 3 with each input's spent output too.",
        args: &[
            required("blockhash", "string, required", "the block's hash"),
            optional("verbosity", "numeric", "1", "0, 1, 2 or 3; a boolean reads as 0 or 1"),
        ],
    },
    Command {
        name: "getblockchaininfo",
        category: "blockchain",
        usage: "getblockchaininfo",
        about: "The state of the chain: network, heights, tip, difficulty, work, times, pruning.",
        args: &[],
    },
    Command {
        name: "getblockcount",
        category: "blockchain",
        usage: "getblockcount",
        about: "The height of the tip of the active chain (the genesis block is height 0).",
        args: &[],
    },
    Command {
        name: "getblockhash",
        category: "blockchain",
        usage: "getblockhash height",
        about: "The hash of the block at a height of the active chain.",
        args: &[required("height", "numeric, required", "the height")],
    },
    Command {
        name: "getblockheader",
        category: "blockchain",
        usage: "getblockheader \"blockhash\" ( verbose )",
        about: "A block header: a JSON object, or its serialization as hex when verbose is false.",
        args: &[
            required("blockhash", "string, required", "the block's hash"),
            optional("verbose", "boolean", "true", "JSON object (true) or hex (false)"),
        ],
    },
    Command {
        name: "getmempoolentry",
        category: "blockchain",
        usage: "getmempoolentry \"txid\"",
        about: "The mempool's data for one of its transactions.",
        args: &[required("txid", "string, required", "a transaction in the mempool")],
    },
    Command {
        name: "getmempoolinfo",
        category: "blockchain",
        usage: "getmempoolinfo",
        about: "The mempool's size, fees, limits and policy settings.",
        args: &[],
    },
    Command {
        name: "getrawmempool",
        category: "blockchain",
        usage: "getrawmempool ( verbose mempool_sequence )",
        about: "The mempool's txids, or an object of its entries by txid when verbose is true.",
        args: &[
            optional("verbose", "boolean", "false", "entries (true) or txids (false)"),
            optional(
                "mempool_sequence",
                "boolean",
                "false",
                "with the txids, the mempool's sequence number (not with verbose)",
            ),
        ],
    },
    Command {
        name: "gettxspendingprevout",
        category: "blockchain",
        usage: "gettxspendingprevout [{\"txid\":\"hex\",\"vout\":n},...] ( {\"mempool_only\":bool,\"return_spending_tx\":bool,...} )",
        about: "For each output, the transaction that spends it: looked up in the mempool, then in\n\
                the txospenderindex (whose answers carry the spending block's hash).",
        args: &[
            required(
                "outputs",
                "json array, required",
                "the outputs, each {\"txid\": hex, \"vout\": n}",
            ),
            Arg {
                name: "options",
                kind: "json object",
                required: false,
                default: "{}",
                about: "mempool_only (default false: the index is there) and return_spending_tx\n\
                        (default false), also accepted as named parameters",
                named_only: &["mempool_only", "return_spending_tx"],
            },
        ],
    },
    Command {
        name: "help",
        category: "control",
        usage: "help ( \"command\" )",
        about: "Every command by category, or the text of one command.",
        args: &[optional(
            "command",
            "string",
            "all commands",
            "the command to describe",
        )],
    },
    Command {
        name: "uptime",
        category: "control",
        usage: "uptime",
        about: "Seconds since the node started.",
        args: &[],
    },
    Command {
        name: "generatetoaddress",
        category: "generating",
        usage: "generatetoaddress nblocks \"address\" ( maxtries )",
        about: "Mines blocks at once and returns their hashes (the simulator ignores the address).",
        args: &[
            required("nblocks", "numeric, required", "how many blocks"),
            required("address", "string, required", "where the rewards would go"),
            optional("maxtries", "numeric", "1000000", "ignored"),
        ],
    },
    Command {
        name: "getnetworkinfo",
        category: "network",
        usage: "getnetworkinfo",
        about: "The node's version, services, networks and relay fees.",
        args: &[],
    },
    Command {
        name: "getrawtransaction",
        category: "rawtransactions",
        usage: "getrawtransaction \"txid\" ( verbosity \"blockhash\" )",
        about: "A transaction of the mempool or the chain (the node keeps a txindex): hex for\n\
                verbosity 0, a JSON object for 1, with fee and spent outputs for 2.",
        args: &[
            required("txid", "string, required", "the transaction id"),
            optional("verbosity", "numeric", "0", "0, 1 or 2; a boolean reads as 0 or 1"),
            optional("blockhash", "string", "", "look in this block only"),
        ],
    },
    Command {
        name: "sendrawtransaction",
        category: "rawtransactions",
        usage: "sendrawtransaction \"hexstring\" ( maxfeerate maxburnamount )",
        about: "Adds a transaction to the mempool and returns its txid.",
        args: &[
            required("hexstring", "string, required", "the transaction, hex"),
            optional("maxfeerate", "numeric or string", "0.10", "accepted, not enforced"),
            optional("maxburnamount", "numeric or string", "0", "accepted, not enforced"),
        ],
    },
    Command {
        name: "submitpackage",
        category: "rawtransactions",
        usage: "submitpackage [\"rawtx\",...] ( maxfeerate maxburnamount )",
        about: "Adds a package of transactions to the mempool, results keyed by wtxid.",
        args: &[
            required("package", "json array, required", "the transactions, hex"),
            optional("maxfeerate", "numeric or string", "0.10", "accepted, not enforced"),
            optional("maxburnamount", "numeric or string", "0", "accepted, not enforced"),
        ],
    },
    Command {
        name: "testmempoolaccept",
        category: "rawtransactions",
        usage: "testmempoolaccept [\"rawtx\",...] ( maxfeerate )",
        about: "Whether the mempool would accept each transaction, without adding it.",
        args: &[
            required("rawtxs", "json array, required", "the transactions, hex"),
            optional("maxfeerate", "numeric or string", "0.10", "accepted, not enforced"),
        ],
    },
    Command {
        name: "estimatesmartfee",
        category: "util",
        usage: "estimatesmartfee conf_target ( \"estimate_mode\" )",
        about: "A fee rate (coins per kvB) to confirm within conf_target blocks.",
        args: &[
            required("conf_target", "numeric, required", "blocks, 1 to 1008"),
            optional(
                "estimate_mode",
                "string",
                "economical",
                "unset, economical or conservative",
            ),
        ],
    },
    Command {
        name: "getindexinfo",
        category: "util",
        usage: "getindexinfo ( \"index_name\" )",
        about: "The node's optional indexes and whether they are synced.",
        args: &[optional("index_name", "string", "", "only this index")],
    },
    Command {
        name: "validateaddress",
        category: "util",
        usage: "validateaddress \"address\"",
        about: "Whether an address is valid for the network, and its output script.",
        args: &[required("address", "string, required", "the address")],
    },
    Command {
        name: "getzmqnotifications",
        category: "zmq",
        usage: "getzmqnotifications",
        about: "The ZMQ notifications the node publishes (none).",
        args: &[],
    },
];

/// The command named `name`, if the simulator answers it as Core does.
pub(crate) fn command(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

impl Command {
    /// The command's help text: synopsis, description, arguments.
    pub(crate) fn text(&self) -> String {
        let mut out = format!("{}\n\n{}\n", self.usage, self.about);
        if !self.args.is_empty() {
            out.push_str("\nArguments:\n");
            for (i, a) in self.args.iter().enumerate() {
                let how = if a.required {
                    a.kind.to_string()
                } else if a.default.is_empty() {
                    format!("{}, optional", a.kind)
                } else {
                    format!("{}, optional, default={}", a.kind, a.default)
                };
                out.push_str(&format!(
                    "{}. {:<20} ({}) {}\n",
                    i + 1,
                    a.name,
                    how,
                    a.about.replace('\n', " ")
                ));
            }
        }
        out
    }

    /// Core's answer to a call with the wrong number of arguments.
    pub(crate) fn usage_error(&self) -> RpcError {
        (-1, self.text())
    }

    /// Checks the argument count as Core does before running a command.
    pub(crate) fn check_count(&self, given: usize) -> Result<(), RpcError> {
        let needed = self.args.iter().filter(|a| a.required).count();
        if given < needed || given > self.args.len() {
            return Err(self.usage_error());
        }
        Ok(())
    }

    /// Named parameters (a JSON object) to positional ones, as Core's
    /// `transformNamedArguments`: holes before a given parameter become nulls, an options
    /// object's members may be named directly, unknown names are refused.
    pub(crate) fn positional(&self, named: &Map<String, Value>) -> Result<Vec<Value>, RpcError> {
        let mut left: Map<String, Value> = named.clone();
        let mut out = Vec::new();
        let mut hole = 0;
        for arg in self.args {
            let mut options = Map::new();
            for member in arg.named_only {
                if let Some(v) = left.remove(*member) {
                    options.insert((*member).to_string(), v);
                }
            }
            let given = left.remove(arg.name);
            if given.is_none() && options.is_empty() {
                hole += 1;
                continue;
            }
            out.extend(std::iter::repeat_n(Value::Null, hole));
            hole = 0;
            match (given, options.is_empty()) {
                (Some(_), false) => {
                    let first = options.keys().next().cloned().unwrap_or_default();
                    return Err((
                        -8,
                        format!("Parameter {} conflicts with parameter {first}", arg.name),
                    ));
                }
                (Some(v), true) => out.push(v),
                (None, _) => out.push(Value::Object(options)),
            }
        }
        if let Some(unknown) = left.keys().next() {
            return Err((-8, format!("Unknown named parameter {unknown}")));
        }
        Ok(out)
    }
}

/// `help` without a command: every command's synopsis under `== Category ==` headings, the
/// categories in alphabetical order, as one string.
pub(crate) fn overview() -> String {
    let mut commands: Vec<&Command> = COMMANDS.iter().collect();
    commands.sort_by_key(|c| (c.category, c.name));
    let mut out = String::new();
    let mut category = "";
    for c in commands {
        if c.category != category {
            if !category.is_empty() {
                out.push('\n');
            }
            category = c.category;
            let mut title = category.to_string();
            title[..1].make_ascii_uppercase();
            out.push_str(&format!("== {title} ==\n"));
        }
        out.push_str(c.usage);
        out.push('\n');
    }
    out.pop();
    out
}

/// `help COMMAND`: the command's text, or Core's answer for a command it does not have.
pub(crate) fn describe(name: &str) -> String {
    match command(name) {
        Some(c) => c.text().trim_end().to_string(),
        None => format!("help: unknown command: {name}"),
    }
}
