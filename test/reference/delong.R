# DeLong's test for two correlated (paired) ROC AUCs on the same slides, from pROC's roc.test, with tied scores;
# reference for test/core/stats/delong.test.ts.
# Run: Rscript test/reference/delong.R > test/reference/fixtures/delong.json
suppressMessages(library(pROC))
num <- function(x) sprintf("%.17g", x)
vec <- function(x) paste0("[", paste(sapply(x, num), collapse = ", "), "]")
cases <- c()
make_case <- function(name, labels, a, b) {
  r1 <- roc(labels, a, levels = c(0, 1), direction = "<", quiet = TRUE)
  r2 <- roc(labels, b, levels = c(0, 1), direction = "<", quiet = TRUE)
  t <- roc.test(r1, r2, method = "delong", paired = TRUE, conf.level = 0.95)
  sprintf('{"name": "%s", "labels": %s, "scoresA": %s, "scoresB": %s, "aucA": %s, "aucB": %s, "z": %s, "p": %s, "ciLow": %s, "ciHigh": %s}',
    name, vec(labels), vec(a), vec(b), num(as.numeric(r1$auc)), num(as.numeric(r2$auc)), num(unname(t$statistic)), num(t$p.value),
    num(t$conf.int[1]), num(t$conf.int[2]))
}
set.seed(20261203)
# 40 slides, scores rounded to one decimal: many ties within and across classes.
y <- c(rep(0, 22), rep(1, 18))
a <- round(pmin(1, pmax(0, 0.35 + 0.25 * y + rnorm(40, sd = 0.2))), 1)
b <- round(pmin(1, pmax(0, 0.4 + 0.1 * y + 0.5 * (a - 0.45) + rnorm(40, sd = 0.15))), 1)
cases <- c(cases, make_case("ties-rounded", y, a, b))
# 16 slides (the Table 3 size), coarse scores on a 5-level scale.
y <- c(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
a <- c(0.1, 0.2, 0.2, 0.4, 0.4, 0.6, 0.2, 0.8, 0.6, 0.8, 0.8, 0.4, 1.0, 0.6, 0.8, 1.0)
b <- c(0.2, 0.2, 0.4, 0.2, 0.6, 0.4, 0.4, 0.6, 0.6, 0.6, 1.0, 0.2, 0.8, 0.8, 0.6, 0.8)
cases <- c(cases, make_case("table3-size", y, a, b))
# 120 continuous scores, unbalanced classes, shuffled order.
y <- sample(c(rep(0, 85), rep(1, 35)))
a <- plogis(-1 + 1.4 * y + rnorm(120))
b <- plogis(-1 + 1.1 * y + 0.6 * qlogis(a) + rnorm(120, sd = 0.8))
cases <- c(cases, make_case("continuous-unbalanced", y, a, b))
cat(sprintf('{\n"generator": "test/reference/delong.R, pROC %s, %s",\n"cases": [\n%s\n]\n}\n', as.character(packageVersion("pROC")), R.version.string, paste(cases, collapse = ",\n")))
