# Reference values of Student's t and the standard normal from R's pt/qt/pnorm/qnorm, for
# test/core/stats/distributions.test.ts. Run: Rscript test/reference/distributions.R > test/reference/fixtures/distributions.json
num <- function(x) sprintf("%.17g", x)
rows <- c()
for (df in c(1, 2, 3, 4.5, 9, 29, 200)) {
  for (t in c(-8, -2.5, -0.3, 0, 0.7, 1.96, 4, 12)) {
    rows <- c(rows, sprintf('{"df": %s, "t": %s, "cdf": %s, "twoSided": %s}', num(df), num(t), num(pt(t, df)), num(2 * pt(-abs(t), df))))
  }
}
quant <- c()
for (df in c(1, 2, 4, 9, 29, 200)) {
  for (p in c(0.001, 0.025, 0.3, 0.5, 0.8, 0.975, 0.9995)) {
    quant <- c(quant, sprintf('{"df": %s, "p": %s, "q": %s}', num(df), num(p), num(qt(p, df))))
  }
}
normal <- c()
for (z in c(-9, -3.2, -1.1, 0, 0.4, 1.959964, 5.5)) normal <- c(normal, sprintf('{"z": %s, "cdf": %s}', num(z), num(pnorm(z))))
nq <- c()
for (p in c(1e-10, 0.001, 0.025, 0.3, 0.5, 0.975, 0.999999)) nq <- c(nq, sprintf('{"p": %s, "q": %s}', num(p), num(qnorm(p))))
cat(sprintf('{\n"generator": "test/reference/distributions.R, %s",\n"t": [\n%s\n],\n"tQuantile": [\n%s\n],\n"normal": [\n%s\n],\n"normalQuantile": [\n%s\n]\n}\n',
  R.version.string, paste(rows, collapse = ",\n"), paste(quant, collapse = ",\n"), paste(normal, collapse = ",\n"), paste(nq, collapse = ",\n")))
