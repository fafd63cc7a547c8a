// Prints the suite's closing line ("N passed, N failed") from the JSON report vitest writes under CI.
import { readFileSync } from 'node:fs'

const report = JSON.parse(readFileSync(new URL('../.ci-results/vitest.json', import.meta.url), 'utf8'))
const skipped = report.numPendingTests + report.numTodoTests
console.log(
  `${report.numPassedTests} passed, ${report.numFailedTests} failed${skipped ? `, ${skipped} skipped` : ''}`,
)
if (report.numFailedTests > 0 || report.numPassedTests === 0) process.exit(1)
