import { describe, expect, it } from "vitest"
import { advertisedMechanisms, saslBannerLine, tcpConnection } from "../../src/auth/mechanisms.js"
import { makeAuthSettings } from "../../src/auth/settings.js"

// Expectations below were checked against the real backupd 3.6.1 banner on this machine.
describe("mechanism list", () => {
  const conn = (ssf: number, externalAuthId?: string) => ({ externalSsf: ssf, externalAuthId })

  it("hides plaintext mechanisms by default", () => {
    const s = makeAuthSettings({ mechList: "PLAIN LOGIN" })
    expect(saslBannerLine(s, tcpConnection(s))).toBeUndefined()
  })

  it("offers PLAIN LOGIN with allowplaintext", () => {
    const s = makeAuthSettings({ allowPlaintext: true, mechList: "PLAIN LOGIN" })
    expect(saslBannerLine(s, tcpConnection(s))).toBe("* SASL PLAIN LOGIN")
  })

  it("offers plaintext when the external SSF (-p) is above 1", () => {
    const s = makeAuthSettings({ mechList: "PLAIN LOGIN", externalSsf: 2 })
    expect(saslBannerLine(s, tcpConnection(s))).toBe("* SASL PLAIN LOGIN")
    expect(saslBannerLine(s, conn(1))).toBeUndefined()
  })

  it("sasl_minimum_layer above the external SSF hides everything", () => {
    const s = makeAuthSettings({ mechList: "PLAIN LOGIN", saslMinimumLayer: 3 })
    expect(saslBannerLine(s, conn(2))).toBeUndefined()
    const a = makeAuthSettings({ allowPlaintext: true, mechList: "PLAIN LOGIN", saslMinimumLayer: 1 })
    expect(saslBannerLine(a, conn(0))).toBeUndefined()
    expect(saslBannerLine(a, conn(1))).toBe("* SASL PLAIN LOGIN")
  })

  it("keeps sasl_mech_list order, repeats, canonical names; drops unknown ones", () => {
    const s = makeAuthSettings({ allowPlaintext: true, mechList: "login  plain PLAIN bogus EXTERNAL" })
    expect(advertisedMechanisms(s, conn(0))).toEqual(["LOGIN", "PLAIN", "PLAIN"])
  })

  it("offers EXTERNAL only with an external identity, first when unlisted", () => {
    const s = makeAuthSettings({ allowPlaintext: true })
    expect(advertisedMechanisms(s, conn(0))).toEqual(["PLAIN", "LOGIN"])
    expect(advertisedMechanisms(s, conn(0, "certuser"))).toEqual(["EXTERNAL", "PLAIN", "LOGIN"])
    const noPlain = makeAuthSettings({})
    expect(saslBannerLine(noPlain, conn(0, "certuser"))).toBe("* SASL EXTERNAL")
  })
})
