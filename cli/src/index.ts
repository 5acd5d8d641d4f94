export { type CliIO, reportError, runCli } from "./cli.js";
export { type ArgDef, type CommandDef, ExitCode, type OptionDef, type RunContext } from "./command.js";
export { commands } from "./commands/index.js";
export { commandHelp, overviewHelp, referenceMarkdown } from "./help.js";
