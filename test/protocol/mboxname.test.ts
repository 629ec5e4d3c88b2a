import { describe, expect, it } from "vitest"
import {
  backupKeyOfMboxname,
  canonicalUserid,
  inboxOfUserid,
  parseMboxname,
  useridOfMboxname
} from "../../src/protocol/mboxname.js"

describe("mailbox name → backup owner", () => {
  it.each([
    ["user.anne", "anne"],
    ["user.anne.Sent", "anne"],
    ["user.anne.Work.Projects.2024", "anne"],
    ["example.com!user.anne.Sent", "anne@example.com"],
    ["internal!user.anne", "anne"],
    ["user.anne^smith.Sent", "anne.smith"],
    ["DELETED.user.anne.Trash.5F3A1B2C", "anne"],
    ["example.com!DELETED.user.bob.Old.5F3A1B2C", "bob@example.com"],
    ["shared.folder", undefined],
    ["user", undefined],
    ["DELETED.shared.5F3A1B2C", undefined]
  ])("%s belongs to %s", (name, owner) => {
    expect(useridOfMboxname(name)).toBe(owner)
  })

  it("keys shared mailboxes as %SHARED", () => {
    expect(backupKeyOfMboxname("shared.x")).toBe("%SHARED")
    expect(backupKeyOfMboxname("user.carol.x")).toBe("carol")
  })

  it("honours deletedprefix and defaultdomain", () => {
    const naming = { defaultDomain: "example.org", deletedPrefix: "GONE" }
    expect(useridOfMboxname("GONE.user.anne.x.ABCD", naming)).toBe("anne")
    expect(useridOfMboxname("example.org!user.anne", naming)).toBe("anne")
    expect(useridOfMboxname("DELETED.user.anne.x.ABCD", naming)).toBeUndefined()
    expect(parseMboxname("GONE.user.anne.x.ABCD", naming).deleted).toBe(true)
  })

  it("round-trips userids through their INBOX name", () => {
    for (const u of ["anne", "anne.smith", "bob@example.com", "a.b@c.d"]) {
      expect(useridOfMboxname(inboxOfUserid(u))).toBe(u)
    }
    expect(canonicalUserid("anne@internal")).toBe("anne")
  })
})
