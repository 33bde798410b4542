//! Class labels of classification datasets (one label per case, e.g. the CSV manifest's `label`
//! column) as class indices, and the figures a classifier is validated with: accuracy and the
//! area under the ROC curve.
//!
//! The mapping from names to indices is fixed by the labels alone, so every fold and every run
//! of a dataset agrees on it:
//! - labels that are all non-negative integers are the class indices themselves (`"0"`, `"1"`),
//!   and must be below the network's class count;
//! - otherwise the distinct labels sorted by their bytes are classes 0, 1, ... (brain-classes:
//!   `AD` = 0, `CN` = 1); there must be as many as the network has classes.
//!
//! A run records the names in index order (`class_names` in its config, `classes.json`, the
//! checkpoint state) so a prediction can say which class a logit is.

use std::collections::BTreeMap;

use crate::data::{DataError, Volume};

/// The class names in index order for `labels` (every case's label, repeats allowed) and a
/// network predicting `classes` classes. Empty when there are no labels.
pub fn class_names<'a>(labels: impl IntoIterator<Item = &'a str>, classes: usize) -> Result<Vec<String>, DataError> {
    let distinct: std::collections::BTreeSet<&str> = labels.into_iter().collect();
    if distinct.is_empty() {
        return Ok(Vec::new());
    }
    let numbers: Option<Vec<u64>> = distinct.iter().map(|l| l.parse::<u64>().ok()).collect();
    if let Some(numbers) = numbers {
        if let Some(too_big) = numbers.iter().find(|&&n| n >= classes as u64) {
            return Err(DataError::Classes(format!("numeric label {too_big} is not a class index below {classes} (the network's classes)")));
        }
        return Ok((0..classes).map(|n| n.to_string()).collect());
    }
    if distinct.len() != classes {
        let names: Vec<&str> = distinct.into_iter().collect();
        return Err(DataError::Classes(format!("{} labels ({}) but the network predicts {classes} classes", names.len(), names.join(", "))));
    }
    Ok(distinct.into_iter().map(str::to_string).collect())
}

/// The index of `label` among `names` (a numeric label also matches its number: `"01"` is 1).
pub fn class_index(names: &[String], label: &str) -> Option<usize> {
    let number = label.parse::<u64>().ok();
    names.iter().position(|n| n == label || (number.is_some() && n.parse::<u64>().ok() == number))
}

/// Sets every volume's class from `labels` (case id -> label); a case without a label keeps
/// `None`.
pub fn assign_classes(volumes: &mut [Volume], labels: &BTreeMap<String, String>, names: &[String]) -> Result<(), DataError> {
    for volume in volumes {
        volume.class = match labels.get(&volume.id) {
            Some(label) => Some(class_index(names, label).ok_or_else(|| DataError::Case { case: volume.id.clone(), message: format!("class label {label:?} is not one of the classes {names:?}") })?),
            None => None,
        };
    }
    Ok(())
}

/// Case id -> class label of a registered dataset version's cases that have one.
pub fn manifest_class_labels(manifest: &medas_dataset::Manifest) -> BTreeMap<String, String> {
    manifest.cases.iter().filter_map(|c| Some((c.id.clone(), c.class_label.clone()?))).collect()
}

/// Case id -> class label of an imported dataset's cases that have one.
pub fn dataset_class_labels(dataset: &medas_dataset::Dataset) -> BTreeMap<String, String> {
    dataset.cases.iter().filter_map(|c| Some((c.id.clone(), c.class_label.clone()?))).collect()
}

/// Share of cases whose most probable class (first on ties) is the true one; `probabilities`
/// holds one row of `classes` values per case.
pub fn accuracy(probabilities: &[f32], truth: &[usize], classes: usize) -> f64 {
    let right = probabilities.chunks(classes).zip(truth).filter(|(row, t)| arg_max(row) == **t).count();
    right as f64 / truth.len().max(1) as f64
}

fn arg_max(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &p)| if p > row[best] { i } else { best })
}

/// Area under the ROC curve of `scores` for telling `positive` cases from the rest: the
/// Mann-Whitney statistic, the share of (positive, negative) pairs the score orders rightly,
/// a tie counting one half. `None` when either group is empty.
pub fn roc_auc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let positives = positive.iter().filter(|p| **p).count();
    let negatives = positive.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // Rank-sum form: sort, give tied scores their mean rank (1-based), sum the positives' ranks.
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let mean_rank = (start + end + 1) as f64 / 2.0;
        rank_sum += mean_rank * order[start..end].iter().filter(|&&i| positive[i]).count() as f64;
        start = end;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// AUC of a classifier's `probabilities` (one row of `classes` per case): with two classes the
/// AUC of class 1's probability; with more, the mean over classes of each class's one-vs-rest
/// AUC (classes absent from `truth`, or making up all of it, left out). `None` when no class
/// gives an AUC.
pub fn classifier_auc(probabilities: &[f32], truth: &[usize], classes: usize) -> Option<f64> {
    let one_vs_rest = |class: usize| {
        let scores: Vec<f32> = probabilities.chunks(classes).map(|row| row[class]).collect();
        let positive: Vec<bool> = truth.iter().map(|&t| t == class).collect();
        roc_auc(&scores, &positive)
    };
    if classes == 2 {
        return one_vs_rest(1);
    }
    let aucs: Vec<f64> = (0..classes).filter_map(one_vs_rest).collect();
    (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ties_half() {
        // Positives 0.8, 0.4, 0.4; negatives 0.4, 0.1. Pairs: 0.8 beats both (2), each 0.4
        // ties 0.4 (0.5) and beats 0.1 (1): 2 + 1.5 + 1.5 = 5 of 6.
        let auc = roc_auc(&[0.4, 0.8, 0.1, 0.4, 0.4], &[true, true, false, false, true]).unwrap();
        assert!((auc - 5.0 / 6.0).abs() < 1e-12, "{auc}");
        assert_eq!(roc_auc(&[0.3, 0.3, 0.3], &[true, false, false]), Some(0.5));
        assert_eq!(roc_auc(&[0.1, 0.9], &[false, true]), Some(1.0));
        assert_eq!(roc_auc(&[0.1, 0.9], &[true, true]), None);
    }

    #[test]
    fn three_class_auc_is_the_mean_of_one_vs_rest() {
        // Rows (p0, p1, p2), truth 0, 1, 2, 2. Class 0: 0.7 above 0.2, 0.1, 0.1 -> 1. Class 1:
        // 0.6 above 0.2 and 0.3, below 0.8 -> 2/3. Class 2: positives 0.6, 0.1 against 0.1,
        // 0.2: 0.6 beats both, 0.1 ties 0.1 (half) and loses to 0.2 -> 2.5/4.
        let p = [0.7, 0.2, 0.1, 0.2, 0.6, 0.2, 0.1, 0.3, 0.6, 0.1, 0.8, 0.1];
        let auc = classifier_auc(&p, &[0, 1, 2, 2], 3).unwrap();
        let expected = (1.0 + 2.0 / 3.0 + 2.5 / 4.0) / 3.0;
        assert!((auc - expected).abs() < 1e-12, "{auc} vs {expected}");
        assert_eq!(accuracy(&p, &[0, 1, 2, 2], 3), 0.75);
    }

    #[test]
    fn names_sort_and_numbers_stay_numbers() {
        assert_eq!(class_names(["CN", "AD", "CN"], 2).unwrap(), ["AD", "CN"]);
        assert_eq!(class_names(["1", "0", "1"], 3).unwrap(), ["0", "1", "2"]);
        assert_eq!(class_index(&class_names(["10", "2"], 11).unwrap(), "10"), Some(10));
        assert_eq!(class_index(&["0".to_string(), "1".to_string()], "01"), Some(1));
        assert!(class_names(Vec::<&str>::new(), 2).unwrap().is_empty());
        assert_eq!(class_names(["a", "a"], 2).unwrap_err().to_string(), "class labels: 1 labels (a) but the network predicts 2 classes");
        assert_eq!(class_names(["a", "b", "c"], 2).unwrap_err().to_string(), "class labels: 3 labels (a, b, c) but the network predicts 2 classes");
        assert_eq!(class_names(["0", "2"], 2).unwrap_err().to_string(), "class labels: numeric label 2 is not a class index below 2 (the network's classes)");
    }
}
