//! Prices. EC2 has no quote call: the Price List Query API (`GetProducts`, JSON 1.1, SigV4
//! service `pricing`, `api.pricing.us-east-1.amazonaws.com`) lists the public on-demand
//! prices of products matched by attribute filters. An instance is priced as Linux, shared
//! tenancy, no pre-installed software, capacity "Used" (the on-demand product), per hour; its
//! EBS root volume per GB-month, turned into an hourly price over 730 hours. Traffic out and
//! the public IPv4 address are billed per GB / per hour separately and are left out, like the
//! traffic-billed bandwidth of the other clouds.

use serde_json::{Value, json};

/// Hours in AWS's billing month (EBS prices are per GB-month).
pub const HOURS_PER_MONTH: f64 = 730.0;

fn term_match(field: &str, value: &str) -> Value {
    json!({"Type": "TERM_MATCH", "Field": field, "Value": value})
}

/// `GetProducts` of the on-demand Linux product of an instance type in a region.
pub fn instance_products(region: &str, instance_type: &str) -> Value {
    json!({
        "ServiceCode": "AmazonEC2",
        "FormatVersion": "aws_v1",
        "MaxResults": 100,
        "Filters": [
            term_match("instanceType", instance_type),
            term_match("regionCode", region),
            term_match("operatingSystem", "Linux"),
            term_match("tenancy", "Shared"),
            term_match("preInstalledSw", "NA"),
            term_match("capacitystatus", "Used"),
        ],
    })
}

/// `GetProducts` of an EBS volume type (`gp3`, `io2`, ...) in a region.
pub fn volume_products(region: &str, volume_api_name: &str) -> Value {
    json!({
        "ServiceCode": "AmazonEC2",
        "FormatVersion": "aws_v1",
        "MaxResults": 100,
        "Filters": [
            term_match("productFamily", "Storage"),
            term_match("regionCode", region),
            term_match("volumeApiName", volume_api_name),
        ],
    })
}

/// The lowest positive on-demand price per `unit` (`Hrs`, `GB-Mo`) in a `GetProducts` answer,
/// with its currency (USD preferred). Each `PriceList` entry is a JSON document in a string.
pub fn lowest_on_demand(answer: &Value, unit: &str) -> Option<(String, f64)> {
    let mut best: Option<(String, f64)> = None;
    for entry in answer["PriceList"].as_array().into_iter().flatten() {
        let product = match entry {
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(v) => v,
                Err(_) => continue,
            },
            other => other.clone(),
        };
        let Some(terms) = product["terms"]["OnDemand"].as_object() else {
            continue;
        };
        for term in terms.values() {
            let Some(dimensions) = term["priceDimensions"].as_object() else {
                continue;
            };
            for d in dimensions.values() {
                if !d["unit"]
                    .as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(unit))
                {
                    continue;
                }
                let Some(prices) = d["pricePerUnit"].as_object() else {
                    continue;
                };
                let chosen = prices.get_key_value("USD").or_else(|| prices.iter().next());
                let Some((currency, value)) = chosen else {
                    continue;
                };
                let Some(price) = value.as_str().and_then(|s| s.parse::<f64>().ok()) else {
                    continue;
                };
                if price > 0.0 && best.as_ref().is_none_or(|(_, b)| price < *b) {
                    best = Some((currency.clone(), price));
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(unit: &str, usd: &str) -> String {
        json!({
            "product": {"productFamily": "Compute Instance", "attributes": {"instanceType": "g4dn.xlarge"}},
            "terms": {"OnDemand": {"SKU.JRTCKXETXF": {"priceDimensions": {
                "SKU.JRTCKXETXF.6YS6EN2CT7": {"unit": unit, "pricePerUnit": {"USD": usd}, "description": "x"}
            }}}, "Reserved": {"SKU.X": {"priceDimensions": {"SKU.X.Y": {"unit": unit, "pricePerUnit": {"USD": "0.0000000001"}}}}}}
        })
        .to_string()
    }

    #[test]
    fn the_filters_name_the_product() {
        let body = instance_products("eu-west-1", "g4dn.xlarge");
        assert_eq!(body["ServiceCode"], "AmazonEC2");
        let filters = body["Filters"].as_array().unwrap();
        assert!(filters.contains(&term_match("instanceType", "g4dn.xlarge")));
        assert!(filters.contains(&term_match("regionCode", "eu-west-1")));
        assert!(filters.contains(&term_match("capacitystatus", "Used")));
        assert!(
            volume_products("eu-west-1", "gp3")["Filters"]
                .as_array()
                .unwrap()
                .contains(&term_match("volumeApiName", "gp3"))
        );
    }

    #[test]
    fn on_demand_prices_are_read_from_the_embedded_documents() {
        let answer = json!({
            "FormatVersion": "aws_v1",
            "PriceList": [product("Hrs", "0.5260000000"), product("Hrs", "0.0000000000"), product("Hrs", "0.7100000000")],
        });
        assert_eq!(
            lowest_on_demand(&answer, "Hrs"),
            Some(("USD".into(), 0.526))
        );
        assert_eq!(lowest_on_demand(&answer, "GB-Mo"), None);
        assert_eq!(lowest_on_demand(&json!({"PriceList": []}), "Hrs"), None);
        let storage = json!({"PriceList": [product("GB-Mo", "0.08")]});
        assert_eq!(
            lowest_on_demand(&storage, "GB-Mo"),
            Some(("USD".into(), 0.08))
        );
    }
}
