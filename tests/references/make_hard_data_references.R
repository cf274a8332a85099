#!/usr/bin/env Rscript
## lme4 reference for a response far from zero with a tiny spread (issue 19, item 5):
## y = 1e12 + 1e-5 * Reaction on sleepstudy (the spread, 2e-3 .. 5e-3, is about 20 units in
## the last place of 1e12). mixeff once refused it as constant; lme4 fits it.
##
## Run from the repository root:
##     Rscript tests/references/make_hard_data_references.R
## Optional: MIXEFF_DATA_DIR (folder of the lme4 data sets as CSV, default tests/data/lme4).
## Writes tests/references/lme4/large_offset_reml.json: the fit of
## lmer(y ~ Days + (Days | Subject), REML = TRUE) and, as the exact-arithmetic check,
## the fit of y - 1e12 (the subtraction is exact in floating point), both with
## theta, sigma, fixef and their standard errors, the standard deviations and correlation
## (as.data.frame(VarCorr(m), order = "lower.tri")$sdcor), REML criterion and lme4's
## messages. Numbers with sprintf("%.17g"). lme4's fit of y itself is not accurate (its
## sums lose the digits of the spread: Days slope 0, a singular fit); the test compares
## mixeff's fit of y with lme4's fit of the exactly shifted y - 1e12.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})
data_dir <- Sys.getenv("MIXEFF_DATA_DIR", file.path("tests", "data", "lme4"))
ss <- read.csv(file.path(data_dir, "sleepstudy.csv"))
ss$Subject <- factor(ss$Subject)
ss$y <- 1e12 + 1e-5 * ss$Reaction
ss$y0 <- ss$y - 1e12
num <- function(x) I(sprintf("%.17g", x))
one <- function(m) {
  list(theta = num(getME(m, "theta")), sigma = num(sigma(m)),
       fixef = num(fixef(m)), fixef_names = names(fixef(m)),
       std_errors = num(sqrt(diag(as.matrix(vcov(m))))),
       sdcor = num(as.data.frame(VarCorr(m), order = "lower.tri")$sdcor),
       objective = num(unname(REMLcrit(m))),
       messages = I(as.character(unlist(m@optinfo$conv$lme4$messages))))
}
m <- lmer(y ~ Days + (Days | Subject), data = ss, REML = TRUE)
m0 <- lmer(y0 ~ Days + (Days | Subject), data = ss, REML = TRUE)
out <- list(
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4"))),
  formula = "y ~ Days + (Days | Subject)",
  response = "1e12 + 1e-5 * Reaction",
  fit = one(m),
  shifted_fit = one(m0)
)
dir.create(file.path("tests", "references", "lme4"), showWarnings = FALSE)
writeLines(toJSON(out, auto_unbox = TRUE, pretty = TRUE),
           file.path("tests", "references", "lme4", "large_offset_reml.json"))
