// Minimal typings for the parts of fs-ext this project uses.
declare module "fs-ext" {
  export const constants: Record<string, number>
  export function fcntl(
    fd: number,
    cmd: "setlk" | "setlkw" | "getlk",
    arg: number,
    callback: (err: NodeJS.ErrnoException | null, result?: number) => void
  ): void
  const fsExt: { constants: Record<string, number>; fcntl: typeof fcntl }
  export default fsExt
}
