/**
 * The interop harness for real Cyrus 3.6.1 (docs/testing.md): instances under master on
 * loopback, mail, clients and tool runners. It lives in src/ so that `npm run bench:sync`
 * (compiled) can use it; the tests import it through test/interop/support/.
 */
export * from "./cyrus.js"
export * from "./imap.js"
export * from "./instances.js"
export * from "./lmtp.js"
export * from "./mail.js"
export * from "./managesieve.js"
export * from "./populate.js"
export * from "./saslauthd.js"
export * from "./syslog.js"
export * from "./tools.js"
export * from "./wire.js"
