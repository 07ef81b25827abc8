// Grammars the grammar tests (and bench/structured.ts) share, each with a JS regex accepting exactly its language
// where the language is regular.

/** A generic JSON object: bounded strings, numbers, nesting and member counts, so that a generation of a few hundred
 *  tokens always has room to finish (an unbounded grammar may legitimately run out of max_tokens). */
export const JSON_OBJECT_GBNF = String.raw`
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null")
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value){0,3} )? "}" ws
array  ::= "[" ws ( value ("," ws value){0,3} )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) ){0,16} "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,8})) ("." [0-9]{1,6})? ([eE] [-+]? [0-9]{1,3})? ws
ws     ::= [ \t\n]{0,2}
`;

/** The unbounded generic JSON grammar (llama.cpp's grammars/json.gbnf shape), for the bench and the oracle. */
export const JSON_GBNF = String.raw`
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws     ::= | " " | "\n" [ \t]{0,20}
`;

export interface RegularCase {
  name: string;
  grammar: string;
  regex: RegExp;
  /** For an unbounded grammar: what a generation cut by maxTokens must match (a prefix of the language). */
  prefix?: RegExp;
}

export const REGULAR_CASES: RegularCase[] = [
  { name: 'alternatives', grammar: 'root ::= ("yes" | "no" | "maybe") "."', regex: /^(yes|no|maybe)\.$/ },
  {
    name: 'words with bounded repetition',
    grammar: 'root ::= [a-z]{1,8} (" " [a-z]{1,8}){2,4} "."',
    regex: /^[a-z]{1,8}( [a-z]{1,8}){2,4}\.$/,
  },
  {
    name: 'multi-line rules, comments, classes and escapes',
    grammar: String.raw`# a speaker line
root ::= ( name ":" "\n"   # inside ( ) a rule may go on over lines
           line{1,3} )
name ::= [A-Z] [A-Z]{2,8}
line ::= [A-Za-z ,']{1,30} [.!?] "\n"
`,
    regex: /^[A-Z][A-Z]{2,8}:\n([A-Za-z ,']{1,30}[.!?]\n){1,3}$/,
  },
  { name: 'digits and optional sign', grammar: String.raw`root ::= "-"? [1-9] [0-9]{0,5} ("." [0-9]{2})?`, regex: /^-?[1-9][0-9]{0,5}(\.[0-9]{2})?$/ },
  { name: 'negated class and +', grammar: String.raw`root ::= "<" [^<>\n]+ ">"`, regex: /^<[^<>\n]+>$/, prefix: /^<[^<>\n]*$/ },
  { name: 'non-ASCII literal (UTF-8 across tokens)', grammar: 'root ::= "é" [a-z]{2} "ß"', regex: /^é[a-z]{2}ß$/ },
  { name: 'non-ASCII range', grammar: String.raw`root ::= [\u00E0-\u00FF]{3} "."`, regex: /^[\u00E0-\u00FF]{3}\.$/ },
];
