/** Reading Prometheus text exposition in tests, and the real `promtool check metrics`. */
import { spawnSync } from "node:child_process"

/** The value of one sample (`name` with exactly these labels, as printed), undefined when absent. */
export const sample = (text: string, name: string, labels = ""): number | undefined => {
  const want = labels === "" ? name : `${name}{${labels}}`
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue
    const sp = line.lastIndexOf(" ")
    if (line.slice(0, sp) === want) return Number(line.slice(sp + 1))
  }
  return undefined
}

/** `promtool check metrics` on the text: status 0 and no output when it is valid and lint-clean. */
export const promtoolCheck = (text: string) => spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" })
